"""The paper's 2-D toy: fit a 16-Gaussian mixture with the one-step MeanFlow policy (MFI loss only).

    python -m mfql.toy out_dir=<dir> steps=<n>

Writes samples.npy (one-step samples g(s, e, 1)), toy.png (data vs samples) and metrics.json with the
2-Wasserstein distance to fresh data samples, next to the same distance for the best single Gaussian and
for a second data sample (the floor set by sampling noise).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy.optimize import linear_sum_assignment

from mfql.agents.meanflow import MeanFlowQL
from mfql.agents.schedules import actor_lr
from mfql.config import check_out_dir, compose, require_int, require_positive, run_cli
from mfql.errors import ConfigError
from mfql.files import atomic_write, write_json
from mfql.log import Progress, setup_logging
from mfql.ranges import SEED_MAX, Range
from mfql.run.checkpoint import seed_everything
from mfql.run.devices import configure_cpu

log = logging.getLogger("mfql.toy")
CENTRES = np.array([(x, y) for x in (-0.75, -0.25, 0.25, 0.75) for y in (-0.75, -0.25, 0.25, 0.75)])
OBS_DIM = 4  # constant observation, as in the official toy


def sample_mixture(n: int, rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    """n points from 16 equally weighted Gaussians (std sigma) centred on {-0.75, -0.25, 0.25, 0.75}^2."""
    return CENTRES[rng.integers(0, len(CENTRES), n)] + sigma * rng.standard_normal((n, 2))


def wasserstein2(x: np.ndarray, y: np.ndarray) -> float:
    """Exact 2-Wasserstein distance between two equal-size empirical distributions (optimal assignment)."""
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(np.sqrt(cost[rows, cols].mean()))


def single_gaussian_w2(data: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> float:
    """Baseline: the best single Gaussian (data mean and covariance) against the same reference."""
    fit = rng.multivariate_normal(data.mean(0), np.cov(data.T), len(reference))
    return wasserstein2(fit, reference)


def toy_agent(cfg) -> MeanFlowQL:
    agent_cfg = compose("train", ["task=antmaze-umaze-v2", "out_dir=.", f"model={cfg.model}"]).agent
    agent_cfg = OmegaConf.merge(agent_cfg, {"time_steps": cfg.time_steps, "adaptive_gamma": cfg.adaptive_gamma,
                                            "mlp_actor_hidden_dims": list(cfg.mlp_hidden_dims)})
    if cfg.model == "paper":  # the official toy's DiT: depth 4, 4 heads
        agent_cfg = OmegaConf.merge(agent_cfg, {"actor_depth": 4, "actor_num_heads": 4})
    return MeanFlowQL(agent_cfg, OBS_DIM, 2, np.zeros(OBS_DIM), np.ones(OBS_DIM), cfg.steps)


def train(cfg) -> tuple[MeanFlowQL, list[float]]:
    seed_everything(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    agent = toy_agent(cfg)
    optimizer = torch.optim.Adam(agent.actor.parameters(), lr=cfg.lr)
    obs = torch.zeros(cfg.batch_size, OBS_DIM)
    losses = []
    for step in Progress(range(cfg.steps), cfg.steps, "toy", logger=log):
        for group in optimizer.param_groups:  # the agent's own schedule: warm-up, cosine to 0.1 x lr
            group["lr"] = float(actor_lr(step, cfg.lr, 0.1, cfg.steps, 0.05))
        actions = torch.as_tensor(sample_mixture(cfg.batch_size, rng), dtype=torch.float32)
        draws = {"times": agent.sample_times(cfg.batch_size), "flow_noises": agent.noise(cfg.batch_size)}
        loss, _ = agent.flow_loss({"observations": obs, "actions": actions}, agent.params(), draws)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return agent, losses


@torch.no_grad()
def one_step_samples(agent: MeanFlowQL, n: int) -> np.ndarray:
    noise = agent.noise(n)
    return agent.one_step(torch.zeros(n, OBS_DIM), noise).numpy()


def plot(path: Path, data: np.ndarray, samples: np.ndarray, w2: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    for ax, points, title in ((axes[0], data, "data (16 Gaussians)"),
                              (axes[1], samples, f"one-step MFQL samples (W2 = {w2:.3f})")):
        ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5)
        ax.set_title(title)
        ax.set_xlim(-1.3, 1.3)
        ax.set_ylim(-1.3, 1.3)
        ax.set_aspect("equal")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def main(argv: list[str]) -> None:
    cfg = compose("toy", argv)
    for key in ("steps", "batch_size", "time_steps"):
        require_int(cfg, key, 1)
    require_int(cfg, "samples", 2)  # a covariance for the W2 distance needs two samples
    if not Range("widths").holds(cfg.mlp_hidden_dims):
        raise ConfigError(f"mlp_hidden_dims={list(cfg.mlp_hidden_dims)!r} is not valid (valid: "
                          f"{Range('widths').describe()})")
    if not Range("int", 0, SEED_MAX).holds(cfg.seed):
        raise ConfigError(f"seed={cfg.seed!r} is not valid (valid: {Range('int', 0, SEED_MAX).describe()})")
    require_int(cfg, "threads", 1, nullable=True)
    require_positive(cfg, "lr")
    if cfg.model not in ("small", "paper"):
        raise ConfigError(f"model={cfg.model!r} is not valid (valid: paper, small)")
    out = check_out_dir("out_dir", cfg.out_dir)  # before minutes of training, not after
    configure_cpu(cfg.threads, cfg.flush_denormal)
    agent, losses = train(cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    samples = one_step_samples(agent, cfg.samples)
    data = sample_mixture(cfg.samples, rng)
    w2 = wasserstein2(samples, data)
    baseline = single_gaussian_w2(sample_mixture(cfg.samples, rng), data, rng)
    floor = wasserstein2(sample_mixture(cfg.samples, rng), data)  # sampling noise: data vs fresh data
    def save_samples(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, samples)

    atomic_write(out / "samples.npy", save_samples)
    plot(out / "toy.png", data, samples, w2)
    metrics = {"w2": w2, "w2_single_gaussian": baseline, "w2_data_vs_data": floor, "steps": cfg.steps,
               "samples": cfg.samples, "model": cfg.model, "seed": cfg.seed,
               "final_loss": float(np.mean(losses[-100:]))}
    write_json(out / "metrics.json", metrics)
    log.info("W2 to data: %.4f (single Gaussian: %.4f; data vs data: %.4f)", w2, baseline, floor)


if __name__ == "__main__":
    setup_logging()
    run_cli(main, "toy")
