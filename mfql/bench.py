"""Speed benchmark: ``python -m mfql.bench [updates=...] [device=...]`` prints JSON.

Measures training updates/s of the paper model and of the small CPU model, one-step action latency
(best-of-K with K = 5, batch 1 and 50) and parameter counts, on cube-single shapes (obs 28, act 5).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from mfql.agent import MeanFlowQL
from mfql.config import CONFIG_DIR, compose, known_tasks, load_task, require_int, run_cli
from mfql.devices import device_name, resolve_device, set_threads
from mfql.networks import count_params

OBS_DIM, ACTION_DIM = 28, 5


def synthetic_batch(batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {
        "observations": torch.randn(batch_size, OBS_DIM, generator=g),
        "actions": torch.rand(batch_size, ACTION_DIM, generator=g) * 2 - 1,
        "rewards": -torch.rand(batch_size, generator=g),
        "masks": torch.ones(batch_size),
        "next_observations": torch.randn(batch_size, OBS_DIM, generator=g),
    }
    return {k: v.to(device) for k, v in batch.items()}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device) -> float:
    """Seconds per call after two warm-up calls."""
    for _ in range(2):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def bench_model(model: str, device: torch.device, updates: int, act_repeats: int) -> dict:
    cfg = compose("train", ["task=cube-single-play-singletask-task2-v0", "out_dir=.", f"model={model}"]).agent
    torch.manual_seed(0)
    agent = MeanFlowQL(cfg, OBS_DIM, ACTION_DIM, np.zeros(OBS_DIM), np.ones(OBS_DIM), 1_000_000, device)
    batch = synthetic_batch(cfg.batch_size, device)
    step = iter(range(1, 10**9))
    per_update = timed(lambda: agent.update(batch, next(step)), updates, device)
    with FlopCounterMode(display=False) as counter:
        agent.update(batch, next(step))
    flops = counter.get_total_flops()
    out = {"updates_per_s": 1.0 / per_update, "ms_per_update": 1e3 * per_update,
           "gflop_per_update": flops / 1e9, "achieved_gflop_per_s": flops / per_update / 1e9,
           "actor_params": count_params(agent.actor), "critic_params": count_params(agent.critic),
           "batch_size": cfg.batch_size, "num_candidates": cfg.num_candidates}
    for batch_size in (1, 50):
        obs = torch.randn(batch_size, OBS_DIM, device=device)
        act = lambda obs=obs: agent.act(obs)  # noqa: E731
        out[f"act_latency_ms_batch{batch_size}"] = 1e3 * timed(act, act_repeats, device)
    return out


def paper_suite_updates() -> dict:
    """Gradient updates of the paper suite (config/config.yaml): offline budgets x seeds, plus O2O runs."""
    suite = yaml.safe_load((CONFIG_DIR.parent / "config.yaml").read_text())["suites"]["paper"]
    offline = o2o = 0
    for name in known_tasks():
        task = load_task(name)
        seeds = suite["offline"]["visual_seeds"] if task.get("visual", False) else suite["offline"]["seeds"]
        offline += len(seeds) * int(task.offline_steps)
        if "o2o" in task:
            o2o += len(suite["o2o"]["seeds"]) * (int(task.o2o.offline_steps) + suite["o2o"]["args"]["online_steps"])
    return {"offline": offline, "o2o": o2o, "total": offline + o2o}


def main(argv: list[str]) -> None:
    cfg = compose("bench", argv)
    require_int(cfg, "updates", 1)
    require_int(cfg, "act_repeats", 1)
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    result = {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "paper": bench_model("paper", device, cfg.updates, cfg.act_repeats),
        "small": bench_model("small", device, cfg.updates * 4, cfg.act_repeats),
    }
    updates = paper_suite_updates()
    result["paper_suite"] = {
        "updates": updates,
        "pflop": updates["total"] * result["paper"]["gflop_per_update"] / 1e6,
        "hours_at_measured_rate": updates["total"] / result["paper"]["updates_per_s"] / 3600,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    run_cli(main, "bench")
