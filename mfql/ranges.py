"""The valid range of every numeric option of ``python -m mfql.train``: the run's options here, each method's
``agent.*`` options in its class (``RANGES``, ``CHOICES``, ``check_config``); checked before any work starts and
listed by ``python -m mfql.train --help``.

A range names what the code can mean, not what is sensible: ``agent.tau=1`` (copy the critic each step) is
valid, ``agent.tau=5`` is not an average. Seeds stop at 2**32 - 1, the largest seed NumPy's legacy RNG (the
OGBench oracles, environment resets) accepts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf

SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Range:
    kind: str  # "int", "number", or "widths" (a non-empty list of integers >= 1)
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is not valid
    nullable: bool = False

    def holds(self, value) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "widths":
            return (isinstance(value, (list, ListConfig)) and len(value) > 0
                    and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in value))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        if self.kind == "widths":
            text = "a non-empty list of integers >= 1, e.g. [256,256]"
        else:
            noun = "an integer" if self.kind == "int" else "a number"
            if self.low is not None and self.high is not None:
                text = f"{noun} in {'(' if self.low_open else '['}{_num(self.low)}, {_num(self.high)}]"
            elif self.low is not None:
                text = f"{noun} {'>' if self.low_open else '>='} {_num(self.low)}"
            else:
                text = noun
        return ("null or " if self.nullable else "") + text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


INT_0, INT_1 = Range("int", 0), Range("int", 1)
POSITIVE, NONNEGATIVE = Range("number", 0, low_open=True), Range("number", 0)
FRACTION, OPEN_FRACTION = Range("number", 0, 1), Range("number", 0, 1, low_open=True)

TRAIN_RANGES = {
    "seed": Range("int", 0, SEED_MAX),
    "offline_steps": INT_0,
    "online_steps": INT_0,
    "eval_interval": INT_1,
    "eval_episodes": INT_0,
    "eval_envs": INT_1,
    "env_memory_mb": INT_1,
    "env_workers": INT_0,
    "log_interval": INT_1,
    "checkpoint_interval": INT_1,
    "env_max_steps": Range("int", 1, nullable=True),
    "frame_stack": Range("int", 1, nullable=True),
    "p_aug": Range("number", 0, 1, nullable=True),
    "buffer_size": INT_1,
    "threads": Range("int", 1, nullable=True),
}


def check_ranges(cfg: DictConfig, ranges: dict[str, Range], prefix: str = "") -> None:
    """One line naming the first option outside its range, and the range (``prefix``: how the message names
    ``cfg``'s keys, e.g. "agent.")."""
    from mfql.errors import ConfigError

    for key, valid in ranges.items():
        value = OmegaConf.select(cfg, key, default=None)
        if not valid.holds(value):
            shown = list(value) if isinstance(value, ListConfig) else value
            raise ConfigError(f"{prefix}{key}={shown!r} is not valid (valid: {valid.describe()})")


def check_choices(cfg: DictConfig, choices: dict[str, tuple], prefix: str = "") -> None:
    """One line naming the first option that is none of its choices, and the choices."""
    from mfql.errors import ConfigError

    for key, valid in choices.items():
        value = OmegaConf.select(cfg, key)
        if value not in valid:
            names = ", ".join("null" if v is None else str(v).lower() if isinstance(v, bool) else v for v in valid)
            raise ConfigError(f"{prefix}{key}={value!r} is not valid (valid: {names})")


def describe_ranges(ranges: dict[str, Range], prefix: str = "") -> str:
    width = max(len(prefix + key) for key in ranges)
    return "\n".join(f"  {prefix + key:<{width}}  {valid.describe()}" for key, valid in ranges.items())
