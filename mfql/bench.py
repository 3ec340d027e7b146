"""Speed benchmark: ``python -m mfql.bench [updates=...] [device=...] [compile=...]`` prints JSON.

Per model (MeanFlow-QL's paper and small CPU models; every method's networks at ``efficiency_model``'s sizes;
every method's pixel networks behind impala_small encoders on 64x64x9 uint8 inputs), on cube-single shapes
(obs 28, act 5, batch 256, K = 5), each of the first two and each method in a fresh process: eager and
compiled updates/s (one after the other, then side by side in alternating rounds), kernels and host reads per
update, compile time, peak device memory, GFLOP per update, one-step action latency and parameter counts, and
the eager update's dispatch share: its time at the dispatch floor (every op, next to no arithmetic) over its
full time. Then evaluation episodes/s on the real cube-single environment, played one at a time and in
lockstep (in this process and in env worker processes); aggregate updates/s of S seeds packed in one process,
beside the gain that the packed update's dispatch share allows (Amdahl); and the paper suite's projected
device hours with the evaluation's share of them. The efficiency section adds, per method, network calls per
action and per update (counted) and the process's peak memory: the paper's performance-efficiency comparison.
Every configuration run in a fresh process (each model, each method) also reports that process's peak
resident memory (``peak_rss_mb``), and the evaluation section the memory per environment.

Over 300 lines on purpose: one section per figure the JSON reports, read top to bottom; the measuring
tools themselves are in mfql/run/profiling.py.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import yaml
from omegaconf import ListConfig
from torch.utils.flop_counter import FlopCounterMode

from mfql.agents import METHODS, baselines, make_agent, proposed
from mfql.agents.base import Agent
from mfql.agents.networks import count_params
from mfql.config import CONFIG_DIR, check_device, check_out_file, compose, known_tasks, load_task, require_int, run_cli
from mfql.errors import ConfigError
from mfql.files import write_json
from mfql.run.devices import check_cpp_compiler, configure_cpu, device_name, resolve_device
from mfql.run.profiling import (
    HostReads,
    compiled_cpu_kernels,
    kernels,
    peak_resident_mb,
    resident_mb,
    side_by_side,
    sync,
    timed,
)

OBS_DIM, ACTION_DIM = 28, 5
SECTIONS = ("paper", "small", "efficiency", "pixels", "evaluation", "packed")  # sections=[...] runs these only
EVAL_TASK = "cube-single-play-singletask-task1-v0"
PIXEL_SHAPE = (64, 64, 9)  # the pixel tasks' observations: 3 stacked 64x64x3 frames


def synthetic_obs(batch_size: int, pixels: bool, generator: torch.Generator) -> torch.Tensor:
    if pixels:  # three stacked 64x64x3 frames, uint8, as the pixel buffer returns them
        return torch.randint(0, 256, (batch_size, *PIXEL_SHAPE), dtype=torch.uint8, generator=generator)
    return torch.randn(batch_size, OBS_DIM, generator=generator)


def synthetic_batch(batch_size: int, device: torch.device, pixels: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    batch = {
        "observations": synthetic_obs(batch_size, pixels, g),
        "actions": torch.rand(batch_size, ACTION_DIM, generator=g) * 2 - 1,
        "rewards": -torch.rand(batch_size, generator=g),
        "masks": torch.ones(batch_size),
        "next_observations": synthetic_obs(batch_size, pixels, g),
        "next_actions": torch.rand(batch_size, ACTION_DIM, generator=g) * 2 - 1,  # read by ReBRAC's critic only
    }
    return {k: v.to(device) for k, v in batch.items()}


def bench_update(agent: Agent, batch: dict, updates: int, device: torch.device,
                 count_kernels: bool = True) -> dict:
    """``count_kernels=False``: leave the count (None) to ``compiled_cpu_kernels``."""
    step = iter(range(1, 10**9))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    agent.update(batch, next(step))  # compiles, when compiled
    sync(device)
    first = time.perf_counter() - start
    per_update = timed(lambda: agent.update(batch, next(step)), updates, device)
    reads = None
    if not agent.compiled:  # a dispatch mode cannot watch a compiled graph
        with HostReads() as counter:
            for _ in range(3):
                agent.update(batch, next(step))
        reads = len(counter.reads) / 3
    count = kernels(lambda: agent.update(batch, next(step)), device) if count_kernels else None
    return {"updates_per_s": 1.0 / per_update, "ms_per_update": 1e3 * per_update,
            "first_update_s": first, "kernels_per_update": count, "host_reads_per_update": reads,
            "peak_device_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else None}


FLOOR_WIDTH = 8  # every width of the dispatch floor's networks (a multiple of the DiT's 2 heads)


def floor_overrides(agent_cfg) -> list[str]:
    """Overrides that keep every layer of the model and so every op of its update, on a batch of 2 and
    networks ``FLOOR_WIDTH`` wide: next to no arithmetic, so the update's time is its dispatch floor (Python,
    the dispatcher, allocations and kernel launches, paid per op whatever the sizes)."""
    widths = [f"agent.{key}=[{','.join([str(FLOOR_WIDTH)] * len(value))}]" for key, value in agent_cfg.items()
              if key.endswith("hidden_dims")]
    widths += [f"agent.{key}={FLOOR_WIDTH}" for key in agent_cfg if key.endswith("hidden_dim")]
    return ["agent.batch_size=2", *widths]


def make_bench_agent(model: str, device: torch.device, compile: bool, method: str | None = None,
                     pixels: bool = False, floor: bool = False) -> Agent:
    """``method``: default the paper's; ``floor``: the model at its dispatch floor (``floor_overrides``)."""
    method = method or proposed()
    encoder = ["agent.encoder=impala_small"] if pixels else []  # as the pixel tasks' files set it
    overrides = [f"task={EVAL_TASK}", "out_dir=.", f"model={model}", f"method={method}", *encoder]
    cfg = compose("train", overrides).agent
    if floor:
        cfg = compose("train", [*overrides, *floor_overrides(cfg)]).agent
    torch.manual_seed(0)
    obs = PIXEL_SHAPE if pixels else OBS_DIM
    return make_agent(method, cfg, obs, ACTION_DIM, np.zeros(1 if pixels else OBS_DIM),
                      np.ones(1 if pixels else OBS_DIM), 1_000_000, device, compile)


def amdahl_gain(dispatch_share: float, seeds: int) -> float:
    """Aggregate gain of ``seeds`` packed seeds over one that sharing dispatch gives, by Amdahl's law: one
    seed's update is ``dispatch_share`` dispatch, paid once for all seeds, and the rest arithmetic, paid per
    seed at one seed's rate (an estimate, not a bound: packed GEMMs can run at a better or a worse rate)."""
    return seeds / (dispatch_share + seeds * (1.0 - dispatch_share))


def dispatch_share(full: Callable, floor: Callable, updates: int, device: torch.device) -> dict:
    """The share of an update's time that its dispatch floor takes: the floor's time per update over the full
    update's, timed side by side (median of the per-round ratios)."""
    rates = side_by_side({"full": full, "floor": floor}, rounds=5, per_round=updates, device=device)
    share = 1.0 / rates["floor_vs_full"]
    return {"floor_updates_per_s": rates["floor_updates_per_s"], "dispatch_share": share,
            "amdahl_gain_S8": amdahl_gain(share, 8)}


def bench_model(model: str, device: torch.device, updates: int, act_repeats: int, compile: bool,
                method: str | None = None, pixels: bool = False) -> dict:
    agent = make_bench_agent(model, device, compile=False, method=method, pixels=pixels)
    batch = synthetic_batch(agent.cfg.batch_size, device, pixels)
    out = {"eager": bench_update(agent, batch, updates, device)}
    if not pixels:
        floor = make_bench_agent(model, device, compile=False, method=method, floor=True)
        floor_batch = synthetic_batch(floor.cfg.batch_size, device)
        steps = iter(range(10**6, 10**9))
        out["eager"]["dispatch"] = dispatch_share(lambda: agent.update(batch, next(steps)),
                                                  lambda: floor.update(floor_batch, next(steps)),
                                                  max(2, updates // 10), device)
    if compile:
        def make() -> Agent:
            return make_bench_agent(model, device, compile=True, method=method, pixels=pixels)

        compiled = make()
        out["compiled"] = bench_update(compiled, batch, updates, device, count_kernels=device.type != "cpu")
        out["compiled_speedup"] = out["compiled"]["updates_per_s"] / out["eager"]["updates_per_s"]
        steps = iter(range(10**6, 10**9))
        out["side_by_side"] = side_by_side({"eager": lambda: agent.update(batch, next(steps)),
                                            "compiled": lambda: compiled.update(batch, next(steps))},
                                           rounds=7, per_round=max(2, updates // 4), device=device)
        if device.type == "cpu":
            out["compiled"]["kernels_per_update"] = compiled_cpu_kernels(make, batch, device)
    with FlopCounterMode(display=False) as counter:
        agent.update(batch, 1)
    out.update(gflop_per_update=counter.get_total_flops() / 1e9, actor_params=count_params(agent.actor),
               critic_params=count_params(agent.critic) if "critic" in agent.NETWORKS else 0,
               batch_size=agent.cfg.batch_size,
               num_candidates=agent.candidates)
    for batch_size in (1, 50):
        obs = synthetic_obs(batch_size, pixels, torch.Generator().manual_seed(1)).to(device)
        act = lambda obs=obs: agent.act(obs)  # noqa: E731
        out[f"act_latency_ms_batch{batch_size}"] = 1e3 * timed(act, act_repeats, device)
    return out


def network_calls(agent: Agent, fn: Callable) -> dict[str, int]:
    """Forward calls of each of the agent's networks while ``fn()`` runs (a ModuleDict's networks apart: FQL's
    flow and one-step policies), networks not called left out: what one action or one update costs in calls."""
    counts: dict[str, int] = {}
    handles = []
    for name in agent.modules():
        module = getattr(agent, name)
        parts = module.items() if isinstance(module, torch.nn.ModuleDict) else [(None, module)]
        for part, net in parts:
            label = name if part is None else f"{name}.{part}"
            counts[label] = 0

            def count(*_, label=label):
                counts[label] += 1

            handles.append(net.register_forward_pre_hook(count))
    try:
        fn()
    finally:
        for handle in handles:
            handle.remove()
    return {label: n for label, n in counts.items() if n}


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: the device memory the process allocated at its peak; CPU: the process's peak resident set (the
    interpreter, torch and the model: run in a fresh process per method, as ``isolated`` does)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_efficiency(model: str, device: torch.device, updates: int, act_repeats: int, compile: bool,
                     method: str) -> dict:
    """One method's cost, for the performance-efficiency comparison: training updates/s (eager, and compiled
    if ``compile``) and GFLOP per update, action latency at batch 1 and 50, network calls per action and per
    update, parameters per network and the peak memory (in a fresh process: ``isolated``)."""
    agent = make_bench_agent(model, device, compile=False, method=method)
    batch = synthetic_batch(agent.cfg.batch_size, device)
    out = {"method": method, "label": METHODS[method].LABEL, "model": model,
           "eager": bench_update(agent, batch, updates, device, count_kernels=False)}
    if compile:
        compiled = make_bench_agent(model, device, compile=True, method=method)
        out["compiled"] = bench_update(compiled, batch, updates, device, count_kernels=False)
    with FlopCounterMode(display=False) as counter:
        agent.update(batch, 1)
    out["gflop_per_update"] = counter.get_total_flops() / 1e9
    out["params"] = {name: count_params(getattr(agent, name)) for name in agent.NETWORKS}
    out["params_total"] = sum(out["params"].values())
    for batch_size in (1, 50):
        obs = synthetic_obs(batch_size, False, torch.Generator().manual_seed(1)).to(device)
        out[f"act_latency_ms_batch{batch_size}"] = 1e3 * timed(lambda obs=obs: agent.act(obs), act_repeats, device)
    one = synthetic_obs(1, False, torch.Generator().manual_seed(2)).to(device)
    out["calls_per_action"] = network_calls(agent, lambda: agent.act(one))
    out["calls_per_update"] = network_calls(agent, lambda: agent.update(batch, 2))
    out["peak_memory_mb"] = peak_memory_mb(device)
    out["peak_memory_kind"] = "device, allocated" if device.type == "cuda" else "process, resident"
    return out


def efficiency_rows(section: dict) -> list[dict]:
    """The efficiency section as one flat row per method (the report's table)."""
    rows = []
    for entry in (section[name] for name in METHODS if name in section):
        best = max(entry["eager"]["updates_per_s"], entry.get("compiled", {}).get("updates_per_s", 0.0))
        rows.append({"method": entry["method"], "label": entry["label"], "model": entry["model"],
                     "updates_per_s": best, "compiled": "compiled" in entry and
                     entry["compiled"]["updates_per_s"] >= entry["eager"]["updates_per_s"],
                     "gflop_per_update": entry["gflop_per_update"],
                     "act_latency_ms_batch1": entry["act_latency_ms_batch1"],
                     "act_latency_ms_batch50": entry["act_latency_ms_batch50"],
                     "calls_per_action": sum(entry["calls_per_action"].values()),
                     "calls_per_update": sum(entry["calls_per_update"].values()),
                     "params": entry["params_total"], "peak_memory_mb": entry["peak_memory_mb"],
                     "peak_memory_kind": entry["peak_memory_kind"]})
    return rows


def _in_child(cpu: tuple, fn, args: tuple, kwargs: dict):
    """``fn``'s result, and for a dict result the child's peak resident memory (``peak_rss_mb``: the host
    memory one configuration needs, the interpreter and torch included, as a job's request must cover)."""
    configure_cpu(*cpu)
    result = fn(*args, **kwargs)
    if isinstance(result, dict):
        result["peak_rss_mb"] = peak_resident_mb()
    return result


def isolated(cpu: tuple, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a fresh process, its CPU set up with ``configure_cpu(*cpu)``, as a training
    job runs one model: the allocator's and the compiler's state after one model's benchmark do not slow the
    next (the small model's compiled update measured 57 updates/s after the paper model's, 72-80 alone).
    A child that dies (killed for memory, say) stops the benchmark with BrokenProcessPool, not a hang."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_in_child, cpu, fn, args, kwargs).result()


def bench_packed(model: str, device: torch.device, updates: int, sizes: list[int], compile: bool) -> dict:
    """Aggregate updates/s of S seeds packed in one process (``PackedUpdate``), per S, and the process's peak
    memory after each S (run in a fresh process: ``isolated``; S ascending, so each peak is that S's own:
    memory grows with S)."""
    from mfql.agents.packed import PackedUpdate

    def packed_update(size: int, floor: bool = False) -> Callable:
        agents = [make_bench_agent(model, device, compile=False, floor=floor) for _ in range(size)]
        packed = PackedUpdate(agents, compile=compile)
        batch = {k: v.unsqueeze(0).expand(size, *v.shape).contiguous()
                 for k, v in synthetic_batch(agents[0].cfg.batch_size, device).items()}
        generators = [torch.Generator(device=device).manual_seed(s) for s in range(size)]
        steps = iter(range(1, 10**9))
        return lambda: packed.update(batch, next(steps), packed.draws(batch["actions"].shape[1], generators))

    out = {"compiled": compile}
    if not compile:  # the packed update's own dispatch share (a compiled floor would cost one more compile)
        out["dispatch"] = dispatch_share(packed_update(1), packed_update(1, floor=True), max(2, updates // 10),
                                         device)
    single = None
    for size in sorted(sizes):
        per_update = timed(packed_update(size), updates, device)
        out[f"S{size}_peak_rss_mb"] = peak_resident_mb()
        out[f"S{size}_aggregate_updates_per_s"] = size / per_update
        single = single or size / per_update
        out[f"S{size}_gain"] = size / per_update / single
        if "dispatch" in out:
            out[f"S{size}_amdahl_gain"] = amdahl_gain(out["dispatch"]["dispatch_share"], size)
        if device.type == "cuda":
            out[f"S{size}_peak_device_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def env_growth_mb(task: str, count: int) -> float:
    """The resident memory ``count`` more environments of ``task`` add to a process that has made one, per
    environment, MB (run it in a fresh process: ``isolated``)."""
    from mfql.run.envs import make_env

    make_env(task, "ogbench")  # MuJoCo, dm_control and ogbench loaded
    before = resident_mb()
    envs = [make_env(task, "ogbench") for _ in range(count)]
    return (resident_mb() - before) / len(envs)


def bench_evaluation(model: str, device: torch.device, episodes: int, env_steps: int, counts: list[int],
                     workers: list[int]) -> dict:
    """Episodes/s on the real cube-single env (episodes cut at ``env_steps``) with each number of environments
    alive at once (``counts``; 1: one episode at a time, ``episodes``: all in lockstep), and the process's
    resident memory per environment; then the lockstep environments stepped in each number of ``workers``
    processes."""
    from mfql.run.envpool import EnvPool, EnvSpec
    from mfql.run.envs import make_env
    from mfql.run.episodes import run_episodes

    env = make_env(EVAL_TASK, "ogbench", None, env_steps)
    cfg = compose("train", [f"task={EVAL_TASK}", "out_dir=.", f"model={model}"]).agent
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    agent = make_agent(proposed(), cfg, obs_dim, action_dim, np.zeros(obs_dim), np.ones(obs_dim), 1000, device)
    out = {"model": model, "episodes": episodes, "env_steps_per_episode": env_steps, "by_envs": {}}
    # in a fresh process: this one's freed heap would take in new environments without growing
    out["mb_per_env"] = isolated((1, True), env_growth_mb, EVAL_TASK, max(2, episodes))
    for count in sorted({*counts, 1, episodes}):
        envs = [make_env(EVAL_TASK, "ogbench", None, env_steps) for _ in range(count)]
        start = time.perf_counter()
        run_episodes(agent, envs, "ogbench", episodes, seed=0)
        out["by_envs"][count] = {"episodes_per_s": episodes / (time.perf_counter() - start)}
        del envs
    out["sequential_episodes_per_s"] = out["by_envs"][1]["episodes_per_s"]
    out["lockstep_episodes_per_s"] = out["by_envs"][episodes]["episodes_per_s"]
    out["lockstep_speedup"] = out["lockstep_episodes_per_s"] / out["sequential_episodes_per_s"]
    for count in workers:  # the pool's start-up (worker processes importing MuJoCo) is not timed
        pool = EnvPool(EnvSpec(EVAL_TASK, "ogbench", ".", env_steps), episodes, count)
        try:
            run_episodes(agent, pool, "ogbench", min(episodes, 2), seed=1)  # workers up and warm
            start = time.perf_counter()
            run_episodes(agent, pool, "ogbench", episodes, seed=0)
            out[f"lockstep_{count}_workers_episodes_per_s"] = episodes / (time.perf_counter() - start)
        finally:
            pool.close()
    return out


def episode_limit(task: str) -> int:
    """The environment's own episode limit (OGBench), or 1000 as an upper bound for D4RL's."""
    if not task.startswith(("antmaze-", "humanoidmaze-", "antsoccer-", "cube-", "scene-", "puzzle-", "visual-")) \
            or task.endswith(("-v2", "-v1")):
        return 1000
    import gymnasium as gym
    import ogbench  # noqa: F401  (registers the environments)

    parts = task.split("-")
    env_id = "-".join(p for i, p in enumerate(parts) if i + 1 >= len(parts) or parts[i + 1] != "singletask")
    return int(gym.spec(env_id).max_episode_steps)


def paper_suite_work() -> dict:
    """Gradient updates and evaluation env steps (episodes run to their limit: an upper bound) of the paper
    suite (config/config.yaml): offline budgets x seeds, plus the offline-to-online runs."""
    suite = yaml.safe_load((CONFIG_DIR.parent / "config.yaml").read_text())["suites"]["paper"]
    train = compose("train", [f"task={EVAL_TASK}", "out_dir=."])
    offline = o2o = eval_steps = 0
    for name in known_tasks():
        task = load_task(name)
        seeds = suite["offline"]["visual_seeds"] if task.get("visual", False) else suite["offline"]["seeds"]
        args = suite["offline"].get("args", {})
        interval, episodes = args.get("eval_interval", train.eval_interval), args.get("eval_episodes", 50)
        evals = int(task.offline_steps) // interval + 1
        offline += len(seeds) * int(task.offline_steps)
        eval_steps += len(seeds) * evals * episodes * episode_limit(name)
        if "o2o" in task:
            steps = int(task.o2o.offline_steps) + suite["o2o"]["args"]["online_steps"]
            o2o += len(suite["o2o"]["seeds"]) * steps
            eval_steps += len(suite["o2o"]["seeds"]) * (steps // interval + 1) * episodes * episode_limit(name)
    return {"updates": {"offline": offline, "o2o": o2o, "total": offline + o2o}, "eval_env_steps": eval_steps}


def paper_suite_projection(result: dict, sizes: list[int]) -> dict:
    """The paper suite's device hours at the best measured paper-model rate, with evaluation's share."""
    work = paper_suite_work()
    paper = result["paper"]
    best = max(paper["eager"]["updates_per_s"], paper.get("compiled", {}).get("updates_per_s", 0.0))
    ev = result["evaluation"]
    eval_hours = work["eval_env_steps"] / (ev["lockstep_episodes_per_s"] * ev["env_steps_per_episode"]) / 3600
    train_hours = work["updates"]["total"] / best / 3600
    out = {
        **work, "pflop": work["updates"]["total"] * paper["gflop_per_update"] / 1e6,
        "train_hours_at_best_measured_rate": train_hours, "eval_hours_lockstep": eval_hours,
        "device_hours": train_hours + eval_hours, "eval_share": eval_hours / (train_hours + eval_hours),
    }
    packed = result["packed"].get("paper", {}).get(f"S{max(sizes)}_aggregate_updates_per_s")
    if packed:  # offline and O2O runs packed max(sizes) per process (O2O's env steps not counted)
        out["device_hours_packed"] = work["updates"]["total"] / max(packed, best) / 3600 + eval_hours
    return out


def measure(result: dict, sections: dict[str, Callable[[], dict]], out: str | None) -> dict:
    """``result`` with each section's figures added in turn, written to ``out`` (if not None) after each, marked
    ``"complete": false``: a benchmark cut short by a time limit keeps what it measured."""
    result = {**result, "complete": False}
    for name, section in sections.items():
        result[name] = section()
        if out is not None:
            write_json(out, result)
    return result


def main(argv: list[str]) -> None:
    cfg = compose("bench", argv)
    require_int(cfg, "updates", 1)
    require_int(cfg, "act_repeats", 1)
    require_int(cfg, "eval_episodes", 1)
    require_int(cfg, "eval_env_steps", 1)
    for key in ("eval_env_workers", "eval_env_counts"):
        if not isinstance(cfg[key], ListConfig) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in cfg[key]):
            raise ConfigError(f"{key}={cfg[key]!r} is not valid (valid: a list of integers >= 1)")
    for key in ("packed_seeds", "packed_models"):
        if not isinstance(cfg[key], ListConfig) or not len(cfg[key]):
            raise ConfigError(f"{key}={cfg[key]!r} is not valid (valid: a non-empty list)")
    if not all(isinstance(s, int) and s >= 1 for s in cfg.packed_seeds):
        raise ConfigError(f"packed_seeds={list(cfg.packed_seeds)} is not valid (valid: integers >= 1)")
    if not set(cfg.packed_models) <= {"paper", "small"}:
        raise ConfigError(f"packed_models={list(cfg.packed_models)} is not valid (valid: paper, small)")
    for key in ("efficiency_model", "eval_model"):
        if cfg[key] not in ("paper", "small"):
            raise ConfigError(f"{key}={cfg[key]!r} is not valid (valid: paper, small)")
    if cfg.sections is not None and (not isinstance(cfg.sections, ListConfig) or not len(cfg.sections)
                                     or not set(cfg.sections) <= set(SECTIONS)):
        raise ConfigError(f"sections={cfg.sections!r} is not valid (valid: null for all, or a non-empty list of "
                          f"{', '.join(SECTIONS)})")
    if cfg.compile not in (None, True, False):
        raise ConfigError(f"compile={cfg.compile!r} is not valid (valid: null, true, false)")
    check_device(cfg.device)
    require_int(cfg, "threads", 1, nullable=True)
    if cfg.out is not None:
        check_out_file("out", str(cfg.out))
    device = resolve_device(cfg.device)
    cpu = (cfg.threads, cfg.flush_denormal)
    configure_cpu(*cpu)
    compile = cfg.compile if cfg.compile is not None else True
    if compile and device.type == "cpu":
        check_cpp_compiler()
    sizes = list(cfg.packed_seeds)
    packed_compile = compile and device.type == "cuda"  # on CPU one compile per S would take minutes each
    sections = {
        "paper": lambda: isolated(cpu, bench_model, "paper", device, cfg.updates, cfg.act_repeats, compile),
        "small": lambda: isolated(cpu, bench_model, "small", device, cfg.updates * 4, cfg.act_repeats, compile),
        # every method with its own networks at efficiency_model's sizes, each in a fresh process (its peak
        # memory its own): the performance-efficiency comparison
        "efficiency": lambda: {name: isolated(cpu, bench_efficiency, cfg.efficiency_model, device, cfg.updates * 2,
                                              cfg.act_repeats, compile, name) for name in (proposed(), *baselines())},
        # the pixel tasks' networks: each behind its own impala_small encoder, 64x64x9 uint8 inputs (eager only:
        # more compiles would not fit tools/gpu-check.sh's time for the benchmark)
        "pixels": lambda: {name: bench_model("paper", device, max(2, cfg.updates // 4), max(1, cfg.act_repeats // 5),
                                             False, method=name, pixels=True) for name in (proposed(), *baselines())},
        "evaluation": lambda: bench_evaluation(cfg.eval_model, device, cfg.eval_episodes, cfg.eval_env_steps,
                                               [c for c in cfg.eval_env_counts if c <= cfg.eval_episodes],
                                               list(cfg.eval_env_workers)),
        "packed": lambda: {model: isolated(cpu, bench_packed, model, device, max(2, cfg.updates // 2)
                                           if model == "paper" else cfg.updates * 2, sizes, packed_compile)
                           for model in cfg.packed_models},
    }
    if cfg.sections is not None:
        sections = {name: sections[name] for name in cfg.sections}
    result = measure({"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
                      "threads": torch.get_num_threads()}, sections, cfg.out)
    if {"paper", "evaluation", "packed"} <= set(sections):
        result["paper_suite"] = paper_suite_projection(result, sizes)
    result["complete"] = True
    if cfg.out is not None:
        write_json(cfg.out, result)
        return
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    run_cli(main, "bench")
