"""Environments for evaluation and online fine-tuning, the per-task reward convention, and the score."""

from __future__ import annotations

import numpy as np


class FrameStack:
    """The last ``count`` frames of a pixel environment concatenated on the channel axis, oldest first; a reset
    repeats the first frame (as FQL's FrameStackWrapper and as the training stacks are built)."""

    def __init__(self, env, count: int):
        import gymnasium

        self.env, self.count, self.frames = env, count, []
        space = env.observation_space
        self.observation_space = gymnasium.spaces.Box(0, 255, (*space.shape[:-1], space.shape[-1] * count),
                                                      np.uint8)
        self.action_space = env.action_space

    def stacked(self) -> np.ndarray:
        return np.concatenate(self.frames, axis=-1)

    def reset(self, **kwargs):
        ob, info = self.env.reset(**kwargs)
        self.frames = [ob] * self.count
        return self.stacked(), info

    def step(self, action):
        ob, reward, terminated, truncated, info = self.env.step(action)
        self.frames = [*self.frames[1:], ob]
        return self.stacked(), reward, terminated, truncated, info

    def close(self):
        self.env.close()

    @property
    def unwrapped(self):
        return self.env.unwrapped


# Resident memory of one environment, MB, by family: the largest measured, rounded up (docs/performance.md,
# "Memory"). A manipulation environment holds its compiled MuJoCo model with meshes and textures; a pixel
# one also its renderer; a maze or Adroit one little.
ENV_MB = {"manipulation": 180, "pixels": 400, "locomotion": 5, "adroit": 10}


def env_family(task: str) -> str:
    """The family whose measured footprint ``ENV_MB`` holds for ``task``'s environment."""
    if task.startswith("visual-"):
        return "pixels"
    if task.startswith(("cube-", "scene-", "puzzle-")):
        return "manipulation"
    if task.startswith(("pen-", "door-", "hammer-", "relocate-")):
        return "adroit"
    return "locomotion"  # antmaze, humanoidmaze, antsoccer (OGBench and D4RL)


def env_mb(task: str) -> int:
    return ENV_MB[env_family(task)]


def eval_pool_size(task: str, episodes: int, eval_envs: int, memory_mb: int, online_envs: int = 0) -> int:
    """Evaluation environments alive at once: the ``episodes`` in lockstep, at most ``eval_envs``, and at most
    as many as fit beside the job's ``online_envs`` in ``memory_mb`` at the task family's measured footprint;
    at least one (when there is an episode to play)."""
    if episodes == 0:
        return 0
    return max(1, min(episodes, eval_envs, memory_mb // env_mb(task) - online_envs))


# gymnasium.make's passive environment checker only warns, and it asks for the observation space, which an OGBench
# pixel environment answers by resetting and rendering itself once more. Seeded episodes are the same without it
# (tests/run/test_envs.py; the time it saves: docs/performance.md).
NO_ENV_CHECKER = {"disable_env_checker": True}


def make_env(task: str, suite: str, minari_dataset=None, max_steps: int | None = None,
             frame_stack: int | None = None, protocol: str | None = None):
    """A fresh environment of the task. OGBench: single-task env with success computed after the step
    (``success_timing='post'``, the 1.1.0 semantics the paper used). D4RL: Minari's evaluation env, with
    D4RL's episode limit, goal test, termination and reward under ``protocol='d4rl'`` (mfql/run/protocol.py).
    ``max_steps`` shortens episodes (quick CPU runs and tests only; the paper uses the envs' own limits);
    ``frame_stack``: pixel tasks' stacked frames."""
    if suite == "ogbench":
        import ogbench

        env = ogbench.make_env_and_datasets(task, env_only=True, success_timing="post", **NO_ENV_CHECKER)
    elif protocol == "d4rl":
        from mfql.run.protocol import make_d4rl_env

        env = make_d4rl_env(task, minari_dataset)
    else:
        env = minari_dataset.recover_environment(eval_env=True)
    if max_steps is not None:
        from gymnasium.wrappers import TimeLimit

        env = TimeLimit(env, max_steps)
    return FrameStack(env, frame_stack) if frame_stack else env


def online_reward(task: str, reward: float) -> float:
    """The same reward shift as the dataset (antmaze 0/1 -> -1/0)."""
    return reward - 1.0 if task.startswith("antmaze") else reward


def episode_score(suite: str, success, episode_return: float, minari_dataset=None,
                  d4rl_task: str | None = None) -> float:
    """OGBench: ``success`` of the last step (0/1). D4RL: the normalised return x 100, with D4RL's reference
    scores for ``d4rl_task`` (protocol d4rl), else with Minari's."""
    if suite == "ogbench":
        return float(success)
    if d4rl_task is not None:
        from mfql.run.protocol import d4rl_score

        return d4rl_score(d4rl_task, episode_return)
    import minari

    return 100.0 * float(minari.get_normalized_score(minari_dataset, np.array([episode_return]))[0])


def metric_name(suite: str) -> str:
    return "success" if suite == "ogbench" else "normalized_return"
