"""Run logging: Python logging to stderr, CSV metric files with a ``step`` column, opt-in trackers."""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def progress_seconds() -> float:
    """Seconds between progress lines off a TTY (``MFQL_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("MFQL_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """One progress display over steps: a tqdm bar on a terminal; off a terminal (SLURM logs, pipes), a
    log line every ``progress_seconds()`` with the step, the rate and the time left.

    Iterate over it (``for step in Progress(range(...), ...)``) or call ``update()`` once per step.
    """

    def __init__(self, iterable, total: int, desc: str, initial: int = 0, logger: logging.Logger | None = None):
        self.iterable, self.total, self.desc, self.initial = iterable, total, desc, initial
        self.log = logger or logging.getLogger(f"mfql.{desc}")
        self.interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=desc, disable=not self.interactive,
                        dynamic_ncols=True, mininterval=1.0, smoothing=0.05)
        self.postfix: dict = {}
        self.every = progress_seconds()
        self.done = initial
        self.start = self.last = time.perf_counter()

    def set_postfix(self, values: dict) -> None:
        self.postfix = values
        self.bar.set_postfix(values)

    def update(self, count: int = 1) -> None:
        self.done += count
        self.bar.update(count)
        now = time.perf_counter()
        if not self.interactive and (now - self.last >= self.every or self.done >= self.total):
            rate = (self.done - self.initial) / max(now - self.start, 1e-9)
            eta = _duration((self.total - self.done) / rate) if rate > 0 else "?"
            extra = "".join(f" {k}={v}" for k, v in self.postfix.items())
            self.log.info("%s %d/%d (%.0f%%) %.1f/s ETA %s%s", self.desc, self.done, self.total,
                          100.0 * self.done / max(self.total, 1), rate, eta, extra)
            self.last = now

    def close(self) -> None:
        self.bar.close()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()


class CSVLog:
    """Appends rows to a CSV whose first column is ``step``; the header is fixed by ``fields`` or the first row."""

    def __init__(self, path: str | Path, fields: list[str] | None = None):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as handle:
                self.fields = next(csv.reader(handle), None)
        elif fields is not None:
            self.fields = list(fields)
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(self.fields)

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = ["step"] + [k for k in row if k != "step"]
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
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
