"""The valid range of every numeric option of ``python -m mfql.train`` (both methods), in one place: checked
before any work starts and listed by ``python -m mfql.train --help``.

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
    "env_workers": INT_0,
    "log_interval": INT_1,
    "checkpoint_interval": INT_1,
    "env_max_steps": Range("int", 1, nullable=True),
    "frame_stack": Range("int", 1, nullable=True),
    "p_aug": Range("number", 0, 1, nullable=True),
    "buffer_size": INT_1,
    "threads": Range("int", 1, nullable=True),
    "agent.actor_hidden_dim": INT_1,
    "agent.actor_depth": INT_1,
    "agent.actor_num_heads": INT_1,
    "agent.actor_mlp_ratio": POSITIVE,
    "agent.actor_residual_scale": FRACTION,
    "agent.mlp_actor_hidden_dims": Range("widths"),
    "agent.critic_hidden_dims": Range("widths"),
    "agent.num_q_heads": INT_1,
    "agent.discount": OPEN_FRACTION,
    "agent.tau": OPEN_FRACTION,
    "agent.batch_size": INT_1,
    "agent.sigma": POSITIVE,
    "agent.time_steps": INT_1,
    "agent.target_clip": POSITIVE,
    "agent.adaptive_gamma": FRACTION,
    "agent.adaptive_c": POSITIVE,
    "agent.alpha": POSITIVE,
    "agent.alpha_update_interval": INT_1,
    "agent.alpha_loss_threshold": Range("number", 1),
    "agent.alpha_increase": Range("number", 1),
    "agent.alpha_decrease": OPEN_FRACTION,
    "agent.alpha_window": INT_1,
    "agent.alpha_warmup_frac": FRACTION,
    "agent.alpha_warmup_frac_corrected": FRACTION,
    "agent.num_candidates": INT_1,
    "agent.bound_loss_weight": NONNEGATIVE,
    "agent.lr": OPEN_FRACTION,
    "agent.lr_min_ratio": FRACTION,
    "agent.lr_warmup_frac": FRACTION,
    "agent.critic_lr": Range("number", 0, 1, low_open=True, nullable=True),
    "agent.grad_clip": POSITIVE,
    "agent.flow_steps": INT_1,
    "agent.fql_actor_hidden_dims": Range("widths"),
    "agent.fql_lr": OPEN_FRACTION,
}


def check_ranges(cfg: DictConfig, ranges: dict[str, Range]) -> None:
    """One line naming the first option outside its range, and the range."""
    from mfql.errors import ConfigError

    for key, valid in ranges.items():
        value = OmegaConf.select(cfg, key, default=None)
        if not valid.holds(value):
            shown = list(value) if isinstance(value, ListConfig) else value
            raise ConfigError(f"{key}={shown!r} is not valid (valid: {valid.describe()})")


def check_alpha_bounds(cfg: DictConfig) -> None:
    """``agent.alpha_bounds``: [lo, hi] multiples of alpha0 with 0 < lo <= 1 <= hi."""
    from mfql.errors import ConfigError

    bounds = OmegaConf.select(cfg, "agent.alpha_bounds")
    ok = (isinstance(bounds, ListConfig) and len(bounds) == 2
          and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
          and 0 < bounds[0] <= 1 <= bounds[1])
    if not ok:
        shown = list(bounds) if isinstance(bounds, ListConfig) else bounds
        raise ConfigError(f"agent.alpha_bounds={shown!r} is not valid (valid: [lo, hi] with 0 < lo <= 1 <= hi, "
                          "multiples of agent.alpha)")


def describe_ranges(ranges: dict[str, Range]) -> str:
    width = max(map(len, ranges))
    return "\n".join(f"  {key:<{width}}  {valid.describe()}" for key, valid in ranges.items())
