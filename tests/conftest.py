"""Shared fixtures: agent configs and a small OGBench dataset regenerated with the real oracles."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from mfql.agents import make_agent as make_method_agent
from mfql.config import compose

ROOT = Path(__file__).resolve().parent.parent
TASK = "cube-single-play-singletask-task1-v0"


def agent_cfg(*overrides: str, model: str = "small"):
    cfg = compose("train", [f"task={TASK}", "out_dir=.", f"model={model}", *overrides])
    return cfg.agent


def make_agent(obs_dim=6, action_dim=3, *overrides: str, model: str = "small", steps: int = 1000,
               device: str = "cpu", compile: bool = False, method: str = "mfql", **kw):
    cfg = agent_cfg(*overrides, model=model)
    if kw:
        cfg = OmegaConf.merge(cfg, kw)
    return make_method_agent(method, cfg, obs_dim, action_dim, np.zeros(obs_dim), np.ones(obs_dim), steps, device,
                             compile)


def random_batch(n=32, obs_dim=6, action_dim=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observations": torch.randn(n, obs_dim, generator=g),
        "actions": torch.rand(n, action_dim, generator=g) * 2 - 1,
        "rewards": -torch.rand(n, generator=g),
        "masks": (torch.rand(n, generator=g) > 0.1).float(),
        "next_observations": torch.randn(n, obs_dim, generator=g),
    }


def run_module(module: str, *args: str, cwd=None, check=True, timeout=600):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def ogbench_dir(tmp_path_factory) -> Path:
    """cube-single-play-v0 rebuilt by mfql.datagen: 4 train + 1 val episodes of 100 steps."""
    out = tmp_path_factory.mktemp("data") / "ogbench"
    run_module("mfql.datagen", "dataset=cube-single-play-v0", "episodes=4", "episode_steps=100",
               f"out_dir={out}", "seed=0")
    return out


@pytest.fixture(scope="session")
def visual_dir(tmp_path_factory) -> Path:
    """visual-cube-single-play-v0 rebuilt by mfql.datagen, frames rendered with EGL: 2 train + 1 val
    episodes of 15 steps (48 frames)."""
    out = tmp_path_factory.mktemp("visual") / "ogbench"
    run_module("mfql.datagen", "dataset=visual-cube-single-play-v0", "episodes=2", "episode_steps=15",
               "val_episodes=1", f"out_dir={out}", "seed=0")
    return out


def _write_minari(dataset_id: str, env_id: str, episodes: int, steps: int, terminal_episode: int | None,
                  ref: tuple[float, float]):
    """A dataset written with minari.create_dataset_from_buffers under its real id, from real rollouts."""
    import gymnasium as gym
    import gymnasium_robotics
    import minari
    from minari.data_collector import EpisodeBuffer

    gym.register_envs(gymnasium_robotics)
    env = gym.make(env_id)
    buffers = []
    rng = np.random.default_rng(0)
    for ep in range(episodes):
        obs, _ = env.reset(seed=ep)
        observations, actions, rewards = [obs], [], []
        for _ in range(steps):
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, _, _, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
        rewards[steps // 2] = 1.0  # a sparse success, to see the antmaze shift
        terms = [False] * steps
        if ep == terminal_episode:
            terms[-1] = True
        truncs = [False] * (steps - 1) + [not terms[-1]]
        if isinstance(observations[0], dict):
            stacked = {k: np.stack([o[k] for o in observations]) for k in observations[0]}
        else:
            stacked = np.stack(observations)
        buffers.append(EpisodeBuffer(id=ep, observations=stacked, actions=np.stack(actions),
                                     rewards=rewards, terminations=terms, truncations=truncs))
    minari.create_dataset_from_buffers(dataset_id, buffers, env=env, eval_env=env_id, algorithm_name="random",
                                       ref_min_score=ref[0], ref_max_score=ref[1])


@pytest.fixture(scope="session")
def minari_dir(tmp_path_factory) -> Path:
    from mfql.data import set_minari_root

    root = tmp_path_factory.mktemp("d4rl")
    set_minari_root(root)
    _write_minari("D4RL/antmaze/umaze-v1", "AntMaze_UMaze-v4", 3, 30, 1, (0.0, 1.0))
    _write_minari("D4RL/pen/cloned-v2", "AdroitHandPen-v1", 2, 20, None, (96.26, 3076.83))
    return root
