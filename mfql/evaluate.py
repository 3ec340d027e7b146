"""Seeded evaluation: ``python -m mfql.evaluate checkpoint=<final.pt> episodes=<n> seed=<n>`` prints JSON."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from mfql.config import ConfigError, compose, run_cli
from mfql.data import flatten_obs, load_minari, set_minari_root
from mfql.envs import episode_score, make_env, metric_name

log = logging.getLogger("mfql.evaluate")


def episode_seed(seed: int, *keys: int) -> int:
    """Independent, reproducible seeds for (run seed, step, episode, ...)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def run_episodes(agent, env, suite: str, episodes: int, seed: int, minari_dataset=None) -> list[float]:
    """Scores of ``episodes`` episodes; environment resets and action noise come only from ``seed``."""
    generator = torch.Generator(device=agent.device).manual_seed(seed)
    scores = []
    for episode in range(episodes):
        obs, info = env.reset(seed=episode_seed(seed, episode))
        done, episode_return = False, 0.0
        while not done:
            obs_t = torch.as_tensor(flatten_obs(obs), device=agent.device).unsqueeze(0)
            action = agent.act(obs_t, generator=generator)[0].cpu().numpy()
            obs, reward, terminated, truncated, info = env.step(action)
            episode_return += float(reward)
            done = terminated or truncated
        scores.append(episode_score(suite, info, episode_return, minari_dataset))
    return scores


def agent_from_checkpoint(path: str | Path, device: str = "cpu"):
    from mfql.agent import MeanFlowQL
    from mfql.checkpoint import load_final

    state = load_final(path)
    cfg = OmegaConf.create(state["config"])
    agent = MeanFlowQL(cfg.agent, state["obs_dim"], state["action_dim"], state["obs_norm"]["mean"],
                       state["obs_norm"]["std"], int(cfg.offline_steps), device)
    agent.load_state_dict(state)
    return agent, cfg


def main(argv: list[str]) -> None:
    cfg = compose("evaluate", argv)
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise ConfigError(f"checkpoint={str(path)!r} does not exist (valid: a final.pt written by mfql.train)")
    if cfg.episodes < 1:
        raise ConfigError(f"episodes={cfg.episodes!r} is not valid (valid: an integer >= 1)")
    agent, run_cfg = agent_from_checkpoint(path)
    data_dir = cfg.data_dir if cfg.data_dir is not None else run_cfg.data_dir
    minari_dataset = None
    if run_cfg.suite != "ogbench":
        set_minari_root(data_dir)
        minari_dataset, _ = load_minari(run_cfg.task, data_dir)
    env = make_env(run_cfg.task, run_cfg.suite, minari_dataset, run_cfg.env_max_steps)
    scores = run_episodes(agent, env, run_cfg.suite, cfg.episodes, cfg.seed, minari_dataset)
    name = metric_name(run_cfg.suite)  # success in [0, 1]; D4RL normalised return x 100
    result = {"checkpoint": str(path), "task": run_cfg.task, "seed": cfg.seed, "episodes": cfg.episodes,
              "metric": name, name: float(np.mean(scores)), "per_episode": scores}
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    run_cli(main)
