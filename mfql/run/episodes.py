"""Episodes of a policy, played in lockstep and seeded per episode: what evaluation (``mfql.evaluate``, the
trainer's periodic evaluations) and the benchmark share."""

from __future__ import annotations

import logging

import numpy as np
import torch

from mfql.log import Progress
from mfql.run.envpool import EnvPool
from mfql.run.envs import episode_score

log = logging.getLogger("mfql.evaluate")

def episode_seed(seed: int, *keys: int) -> int:
    """Independent, reproducible seeds for (run seed, step, episode, ...)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


NOISE_CHUNK = 64  # environment steps of action noise drawn at once per episode


def run_episodes(agent, envs: EnvPool | list, suite: str, episodes: int, seed: int, minari_dataset=None,
                 progress: bool = False) -> list[float]:
    """Scores of ``episodes`` episodes, played ``len(envs)`` at a time in lockstep: one batched best-of-K
    ``act`` and one device-to-host copy per environment step for all running episodes; ``envs`` (a pool, or a
    list of environments to step in this process) steps them, in worker processes if it has any.

    Episode ``e`` is reset with ``episode_seed(seed, e)`` and draws its action noise from its own generator
    (seeded ``episode_seed(seed, e, 1)``), so its score does not depend on how many run beside it.
    """
    pool = envs if isinstance(envs, EnvPool) else EnvPool.of(envs)
    bar = Progress(range(episodes), episodes, "evaluate", logger=log) if progress else None
    scores: list[float] = []
    for first in range(0, episodes, len(pool)):
        ids = list(range(first, min(first + len(pool), episodes)))
        scores += play_lockstep(agent, pool, ids, suite, seed, minari_dataset)
        if bar is not None:
            bar.update(len(ids))
    return scores


def play_lockstep(agent, pool: EnvPool, ids: list[int], suite: str, seed: int, minari_dataset) -> list[float]:
    """Episodes ``ids`` in the pool's first ``len(ids)`` environments."""
    num = agent.candidates
    generators = [torch.Generator(device=agent.device).manual_seed(episode_seed(seed, e, 1)) for e in ids]
    observations = pool.reset([(i, episode_seed(seed, e)) for i, e in enumerate(ids)])
    returns, scores = [0.0] * len(ids), [0.0] * len(ids)
    running, step, chunks = list(range(len(ids))), 0, [None] * len(ids)
    while running:
        if step % NOISE_CHUNK == 0:
            for i in running:
                chunks[i] = agent.noise(NOISE_CHUNK, num, generator=generators[i])  # [chunk, K, A]
        obs = torch.as_tensor(np.stack([observations[i] for i in running]), device=agent.device)
        noises = torch.stack([chunks[i][step % NOISE_CHUNK] for i in running], dim=1)  # [K, running, A]
        actions = agent.act(obs, noises).cpu().numpy()
        still = []
        for i, (observations[i], reward, terminated, truncated, success) in zip(running, pool.step(
                list(zip(running, actions)))):
            returns[i] += reward
            if terminated or truncated:
                scores[i] = episode_score(suite, success, returns[i], minari_dataset, pool.d4rl_task)
            else:
                still.append(i)
        running, step = still, step + 1
    return scores
