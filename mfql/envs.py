"""Environments for evaluation and online fine-tuning, the per-task reward convention, and the score."""

from __future__ import annotations

import numpy as np


def make_env(task: str, suite: str, minari_dataset=None, max_steps: int | None = None):
    """A fresh environment of the task. OGBench: single-task env with success computed after the step
    (``success_timing='post'``, the 1.1.0 semantics the paper used). D4RL: Minari's evaluation env.
    ``max_steps`` shortens episodes (quick CPU runs and tests only; the paper uses the envs' own limits)."""
    if suite == "ogbench":
        import ogbench

        env = ogbench.make_env_and_datasets(task, env_only=True, success_timing="post")
    else:
        env = minari_dataset.recover_environment(eval_env=True)
    if max_steps is not None:
        from gymnasium.wrappers import TimeLimit

        env = TimeLimit(env, max_steps)
    return env


def online_reward(task: str, reward: float) -> float:
    """The same reward shift as the dataset (antmaze 0/1 -> -1/0)."""
    return reward - 1.0 if task.startswith("antmaze") else reward


def episode_score(suite: str, success, episode_return: float, minari_dataset=None) -> float:
    """OGBench: ``success`` of the last step (0/1). D4RL: Minari's normalised return x 100."""
    if suite == "ogbench":
        return float(success)
    import minari

    return 100.0 * float(minari.get_normalized_score(minari_dataset, np.array([episode_return]))[0])


def metric_name(suite: str) -> str:
    return "success" if suite == "ogbench" else "normalized_return"
