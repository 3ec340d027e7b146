"""How an update is measured: the host reads it makes, the kernels it launches, and its rate (alone or side by
side with another update in alternating rounds). Used by ``python -m mfql.bench`` and by the tests that count
host reads per update."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode

from mfql.agents.base import Agent


class HostReads(TorchDispatchMode):
    """Counts the ops that make the host wait for the device: scalar reads and copies to the CPU."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.reads.append(str(func))
        elif func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst = args[0].device if func is torch.ops.aten.copy_.default else kwargs.get("device", src.device)
            if src.device.type != "cpu" and torch.device(dst).type == "cpu":
                self.reads.append(f"{func} {src.device}->cpu")
        return func(*args, **kwargs)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device, warmup: int = 2) -> float:
    """Seconds per call after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def side_by_side(fns: dict, rounds: int, per_round: int, device: torch.device) -> dict:
    """Updates/s of each warm function timed in alternating rounds: the median rate of each and the median of
    the per-round ratios to the first. Load on a shared machine then moves both sides alike (rates measured
    one after the other moved by up to 1.5x between minutes here)."""
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            rates[name].append(1.0 / timed(fn, per_round, device, warmup=0))
    first = next(iter(fns))
    out = {f"{name}_updates_per_s": float(np.median(r)) for name, r in rates.items()}
    for name in list(fns)[1:]:
        out[f"{name}_vs_{first}"] = float(np.median(np.array(rates[name]) / np.array(rates[first])))
    return {**out, "rounds": rounds, "updates_per_round": per_round}


def kernels(fn, device: torch.device) -> int:
    """Kernels one call launches. CUDA: the profiler's device kernels. CPU: its leaf events (an eager aten op
    with no op below it, or one generated kernel of a compiled graph), views and metadata ops left out."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    if device.type == "cuda":
        return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
    free = re.compile(r"aten::(as_strided|view|_unsafe_view|reshape|expand|t|transpose|permute|slice|select|"
                      r"empty|empty_strided|empty_like|resolve_conj|resolve_neg|is_same_size|detach|alias|"
                      r"_reshape_alias|unsqueeze|squeeze|split|split_with_sizes|chunk|unbind|lift_fresh)$")
    return sum(1 for e in prof.events() if not e.cpu_children and not free.match(e.name)
               and not e.name.startswith(("Torch-Compiled", "## ", "CompiledFunction", "TorchDynamo")))


def compiled_cpu_kernels(make: Callable[[], Agent], batch: dict, device: torch.device) -> int:
    """Kernels of a compiled update on the CPU. Its generated kernels are profiler events only when compiled
    with kernel profiling, which slows the update (docs/performance.md): so a second
    agent, compiled with it, for the count alone (the timed agent is compiled without it)."""
    import torch._inductor.config as inductor_config

    # dynamo's cache cleared: it would run the graph compiled without profiling again (inductor's caches on
    # disk key on the setting); cleared again after, so that no later update runs this one.
    torch._dynamo.reset()
    try:
        with inductor_config.patch({"cpp.enable_kernel_profile": True}):
            agent = make()
            agent.update(batch, 1)  # compiles, with each generated kernel named in the profile
            return kernels(lambda: agent.update(batch, 2), device)
    finally:
        torch._dynamo.reset()


def resident_mb() -> float:
    """This process's resident memory now, MB (Linux's /proc; peaks: ``resource``'s ru_maxrss)."""
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_resident_mb() -> float:
    """This process's peak resident memory so far, MB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemoryLedger:
    """Where a job's resident memory goes: the growth of each stage, MB, in the order marked (a stage marked
    again adds to its share: each of a packed job's seeds), then the rest and the peak. A training job logs
    it at its end (docs/performance.md, "Memory")."""

    def __init__(self) -> None:
        self.last = resident_mb()
        self.shares = {"process": self.last}  # the interpreter, torch and mfql, before any of the job's work

    def mark(self, stage: str) -> None:
        now = resident_mb()
        self.shares[stage] = self.shares.get(stage, 0.0) + now - self.last
        self.last = now

    def summary(self) -> str:
        self.mark("the rest")  # evaluations, online rows, logs, the allocator's slack
        parts = ", ".join(f"{stage} {share:+.0f}" if stage != "process" else f"{stage} {share:.0f}"
                          for stage, share in self.shares.items())
        return f"memory (resident MB): {parts}; peak {peak_resident_mb():.0f}"
