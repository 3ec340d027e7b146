"""Run logging: Python logging to stderr, CSV metric files with a ``step`` column, opt-in trackers."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class CSVLog:
    """Appends rows to a CSV whose first column is ``step``; the header is fixed by the first row."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fields: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as handle:
                reader = csv.reader(handle)
                self.fields = next(reader, None)

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
