"""Run logging: Python logging to stderr, CSV metric files with a ``step`` column, opt-in trackers."""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import sys
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def progress_seconds() -> float:
    """Seconds between progress lines off a TTY (``MFQL_PROGRESS_SECONDS``, default 30; checked by
    ``check_environment`` when a command starts)."""
    try:
        return max(0.0, float(os.environ.get("MFQL_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def check_environment() -> None:
    """The environment variables mfql reads, each valid or named in one line."""
    from mfql.errors import ConfigError

    # (a malformed OMP_NUM_THREADS is named by OpenMP itself when torch loads)
    value = os.environ.get("SLURM_CPUS_PER_TASK")
    if value is not None and not re.fullmatch(r"[1-9][0-9]*", value.strip()):
        raise ConfigError(f"environment variable SLURM_CPUS_PER_TASK={value!r} is not valid (valid: an integer >= 1;"
                          " it sets the CPU threads of a job when threads=null)")
    value = os.environ.get("MFQL_PROGRESS_SECONDS")
    if value is not None:
        try:
            ok = math.isfinite(float(value)) and float(value) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"environment variable MFQL_PROGRESS_SECONDS={value!r} is not valid (valid: seconds "
                              "between progress lines, a number >= 0)")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """One progress display over steps: a tqdm bar on a terminal; off a terminal (SLURM logs, pipes), a
    log line every ``progress_seconds()`` with the step, the rate and the time left.

    Iterate over it (``for step in Progress(range(...), ...)``) or call ``update()`` once per step. The rate
    and the time left come from the recent steps only (the last ``RATE_WINDOW`` seconds of stepping): the
    first step (where torch.compile compiles) and every ``paused()`` block (evaluations) are left out, so a
    slow start or a pause does not distort the estimate for the steady steps that remain.
    """

    RATE_WINDOW = 60.0

    def __init__(self, iterable, total: int, desc: str, initial: int = 0, logger: logging.Logger | None = None,
                 clock=time.perf_counter):
        self.iterable, self.total, self.desc, self.initial = iterable, total, desc, initial
        self.log = logger or logging.getLogger(f"mfql.{desc}")
        self.interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=desc, disable=not self.interactive,
                        dynamic_ncols=True, mininterval=1.0, smoothing=0.05)
        self.postfix: dict = {}
        self.every = progress_seconds()
        self.done = initial
        self.clock = clock
        self.last = clock()
        self.excluded = 0.0  # seconds spent in paused() blocks
        self.samples: deque[tuple[float, int]] = deque()  # (stepping seconds, steps done), the recent window

    @contextmanager
    def paused(self):
        """A block whose time is not stepping (an evaluation): left out of the rate and the time left."""
        start = self.clock()
        try:
            yield
        finally:
            self.excluded += self.clock() - start
            self.bar.unpause()

    def rate(self) -> float | None:
        """Steps per second over the recent window; None until two steps after the first were timed."""
        if len(self.samples) < 2:
            return None
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else None

    def set_postfix(self, values: dict) -> None:
        self.postfix = values
        self.bar.set_postfix(values)

    def update(self, count: int = 1) -> None:
        self.done += count
        self.bar.update(count)
        wall = self.clock()
        now = wall - self.excluded
        if self.done - self.initial <= 1:  # the first step (compilation) starts the clock, it is not timed
            self.samples.clear()
        self.samples.append((now, self.done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.RATE_WINDOW:
            self.samples.popleft()
        if not self.interactive and (wall - self.last >= self.every or self.done >= self.total):
            rate = self.rate()
            eta = _duration((self.total - self.done) / rate) if rate else "?"
            extra = "".join(f" {k}={v}" for k, v in self.postfix.items())
            self.log.info("%s %d/%d (%.0f%%) %s/s ETA %s%s", self.desc, self.done, self.total,
                          100.0 * self.done / max(self.total, 1), f"{rate:.1f}" if rate else "?", eta, extra)
            self.last = wall

    def close(self) -> None:
        self.bar.close()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()


class CSVLog:
    """Appends rows to a CSV whose first column is ``step``; the header is fixed by ``fields`` or the first row.
    Lines end in ``\n`` (not the csv module's ``\r\n``), as the copies kept in checkpoints do."""

    def __init__(self, path: str | Path, fields: list[str] | None = None):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as handle:
                self.fields = next(csv.reader(handle), None)
        elif fields is not None:
            self.fields = list(fields)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle, lineterminator="\n").writerow(self.fields)

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = ["step"] + [k for k in row if k != "step"]
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore", lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)


class Tracker:
    """Optional TensorBoard / W&B mirror of the CSV rows (``tracker=none`` by default)."""

    def __init__(self, kind: str, out_dir: Path, config: dict):
        self.kind, self.backend = kind, None
        if kind == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.backend = SummaryWriter(str(out_dir / "tensorboard"))
        elif kind == "wandb":
            import wandb

            self.backend = wandb.init(project="mfql", dir=str(out_dir), config=config)

    def log(self, row: dict, prefix: str = "") -> None:
        if self.backend is None:
            return
        step = int(row["step"])
        values = {f"{prefix}{k}": float(v) for k, v in row.items() if k != "step"}
        if self.kind == "tensorboard":
            for key, value in values.items():
                self.backend.add_scalar(key, value, step)
        else:
            self.backend.log(values, step=step)

    def close(self) -> None:
        if self.backend is not None:
            (self.backend.close if self.kind == "tensorboard" else self.backend.finish)()
