"""Where a job computes: the torch device, the number of CPU threads it may use and the CPU's handling of
denormal floats."""

from __future__ import annotations

import logging
import os
import platform
import shutil

import torch

from mfql.errors import ConfigError

log = logging.getLogger("mfql.run.devices")


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA if usable, else CPU. An explicit ``cuda`` that is not usable stops at once: a job that
    asked for a GPU never trains on the CPU by accident."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is built without CUDA" if torch.version.cuda is None
                   else "no GPU is visible (CUDA_VISIBLE_DEVICES, driver)")
            raise ConfigError(f"device={name!r} but CUDA is not usable here: {why} (valid here: cpu, auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r} but only {torch.cuda.device_count()} GPU(s) are visible")
    return device


def check_cpp_compiler() -> None:
    """``torch.compile`` on the CPU builds C++ kernels: a compiler torch would use must exist (checked before any
    work, not 20 s into the first compile)."""
    from torch._inductor import config

    search = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    if not any(cxx is not None and shutil.which(cxx) for cxx in search):
        names = ", ".join(str(c) for c in search if c is not None)
        raise ConfigError(f"compile=true on the CPU needs a C++ compiler for torch.compile and none is found "
                          f"({names}; set CXX to another); install one (e.g. apt install g++) or pass compile=false")


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")


def cpu_allotment() -> int:
    """The CPUs this job was given: SLURM's per-task count, else OMP_NUM_THREADS, else the CPU affinity mask.

    torch's own default is the machine's core count, which on a shared node or a laptop running two jobs
    made the small model 10-20x slower than one thread per job.
    """
    for var in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(threads: int | None) -> int:
    """Set torch's CPU threads (``None``: the job's allotment) and return the number used."""
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads={threads!r} is not valid (valid: null or an integer >= 1)")
    count = threads or cpu_allotment()
    torch.set_num_threads(count)
    return count


def configure_cpu(threads: int | None, flush_denormal: bool) -> int:
    """Threads (``set_threads``) and denormals: ``flush_denormal`` sets the CPU's flush-to-zero and
    denormals-are-zero modes, as XLA's CPU runtime does for every computation (so the official JAX code on a
    CPU). Values under 1.2e-38 (float32) become 0; the paper model's update then ran 3.5x faster on the
    2-core machine (240 instead of 850 ms: its Adam moments and gradients underflow into denormals, which
    the CPU handles in microcode). GPUs compute denormals at full speed, and neither torch nor XLA flushes
    them there: this setting is for CPUs only."""
    if not isinstance(flush_denormal, bool):
        raise ConfigError(f"flush_denormal={flush_denormal!r} is not valid (valid: true or false)")
    torch.set_flush_denormal(flush_denormal)
    return set_threads(threads)


def set_matmul_precision(precision: str) -> None:
    """``high``: TF32 tensor-core matmuls and convolutions on Ampere+ GPUs, as JAX's default there;
    ``highest``: full float32. CPU matmuls are float32 either way (torch's CPU setting is left alone)."""
    tf32 = precision == "high"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
