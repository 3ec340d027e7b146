"""The online phase of one run: its episode under way, one environment step per update, stored in its buffer.

Each episode's reset is seeded by the run's seed and the episode's index, so an episode can be rebuilt after a
kill by replaying its actions from that reset (the resume state holds them, not the simulator's state).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from mfql.run.envs import online_reward
from mfql.run.episodes import episode_seed

log = logging.getLogger("mfql.train")


class OnlineEpisode:
    """The online episodes of one run in environment ``index`` of ``pool`` (a packed job's seeds share a pool,
    one environment each)."""

    def __init__(self, cfg, agent, buffer, pool, index: int, action_dim: int, device: torch.device,
                 generator: torch.Generator):
        self.cfg, self.agent, self.buffer, self.pool, self.index = cfg, agent, buffer, pool, index
        self.action_dim, self.device, self.generator = action_dim, device, generator
        self.episode, self.obs, self.action = 0, None, None
        self.episode_return, self.episode_actions = 0.0, []
        # Fixed keys from the first row on, so train.csv keeps one header through the switch to online.
        self.stats = {"online/episodes": 0, "online/episode_return": float("nan")} if cfg.online_steps else {}
        if cfg.online_steps and cfg.suite == "ogbench":
            self.stats["online/success"] = float("nan")

    def start(self) -> None:
        self.obs = self.pool.reset([(self.index, episode_seed(self.cfg.seed, 1, self.episode))])[0]
        self.episode_return, self.episode_actions = 0.0, []

    def act(self) -> tuple[int, np.ndarray]:
        """(environment index, the best-of-K action at the current observation), starting an episode if none
        is running: what ``EnvPool.step`` takes."""
        if self.obs is None:
            self.start()
        obs = torch.as_tensor(self.obs, device=self.device).unsqueeze(0)
        self.action = self.agent.act(obs, generator=self.generator, explore=True)[0].cpu().numpy()
        return self.index, self.action

    def record(self, result: tuple) -> None:
        """Store the step that ``act``'s action led to (``EnvPool.step``'s result) in the buffer."""
        next_obs, reward, terminated, truncated, success = result
        self.episode_return += reward
        self.episode_actions.append(self.action)
        self.buffer.add({"observations": self.obs, "actions": self.action,
                         "rewards": np.float32(online_reward(self.cfg.task, reward)),
                         "masks": np.float32(1.0 - float(terminated)), "next_observations": next_obs})
        self.obs = next_obs
        if terminated or truncated:
            self.episode += 1
            self.obs = None  # the next reset is seeded by the episode index, so it needs no saved state
            self.stats = {"online/episodes": self.episode, "online/episode_return": self.episode_return}
            if self.cfg.suite == "ogbench":
                self.stats["online/success"] = float(success)

    def step(self) -> None:
        """One environment step with the best-of-K action, stored in the buffer."""
        self.record(self.pool.step([self.act()])[0])

    def in_progress(self) -> dict | None:
        """The episode under way, for a resume state: its actions so far (the environment's state is rebuilt by
        replaying them from the episode's seeded reset) and its current observation, to check that."""
        if self.obs is None:
            return None
        actions = np.array(self.episode_actions, dtype=np.float32).reshape(-1, self.action_dim)
        return {"actions": torch.as_tensor(actions), "observation": torch.as_tensor(self.obs)}

    def replay(self, saved: dict) -> None:
        """Rebuild the environment mid-episode: reset with the episode's seed and step its saved actions."""
        self.start()
        for action in saved["actions"].numpy():
            self.obs, reward, _, _, _ = self.pool.step([(self.index, action)])[0]
            self.episode_return += reward
            self.episode_actions.append(action)
        if not np.array_equal(self.obs, saved["observation"].numpy()):
            log.warning("replaying online episode %d (%d steps) did not reproduce its saved observation (another "
                        "MuJoCo build or CPU?): the run continues from the replayed state, no longer bit-identical "
                        "to an uninterrupted run", self.episode, len(saved["actions"]))

    def state(self) -> dict:
        return {"episode": self.episode, "online_stats": self.stats, "episode_actions": self.in_progress()}

    def load_state(self, state: dict) -> None:
        self.episode, self.stats = state["episode"], state["online_stats"]
        if state.get("episode_actions") is not None:
            self.replay(state["episode_actions"])
