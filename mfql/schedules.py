"""Step-indexed schedules: the actor learning rate (spec a.12) and the adaptive BC coefficient alpha (spec a.11)."""

from __future__ import annotations

import math

import numpy as np


def actor_lr(update_count: int, lr: float, min_ratio: float, pretrain_steps: int, warmup_frac: float) -> float:
    """Linear warm-up from 0, cosine to ``lr * min_ratio`` at ``pretrain_steps``, then constant (online).

    ``update_count`` is the number of optimizer updates done before this one (0 for the first update).
    """
    warmup = int(warmup_frac * pretrain_steps)
    if update_count < warmup:
        return lr * update_count / warmup
    if update_count <= pretrain_steps:
        progress = (update_count - warmup) / max(pretrain_steps - warmup, 1)
        return lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))
    return lr * min_ratio


class AlphaController:
    """Multiplicative controller of the BC (MFI) weight, event-driven every ``interval`` steps.

    At an event step past the warm-up, alpha grows when the current MFI loss exceeds ``threshold`` times the
    running average of past event losses and shrinks when it falls below 1/threshold of it; the new value is
    used in that same step's loss. Every event (warm-up included) appends the loss to a rolling history.
    """

    def __init__(self, alpha0: float, pretrain_steps: int, warmup_frac: float, interval: int = 2000,
                 threshold: float = 5.0, increase: float = 1.2, decrease: float = 0.8, window: int = 20,
                 bounds: tuple[float, float] = (0.1, 10.0), enabled: bool = True, official_window: bool = True):
        self.alpha0 = alpha0
        self.alpha = alpha0
        self.warmup = int(warmup_frac * pretrain_steps)
        self.interval, self.threshold = interval, threshold
        self.increase, self.decrease = increase, decrease
        self.lo, self.hi = bounds[0] * alpha0, bounds[1] * alpha0
        self.enabled = enabled
        # The official average reads the first `valid` slots while writing at the end (only right once full).
        self.official_window = official_window
        self.history = np.zeros(window, dtype=np.float64)
        self.valid = 0

    def is_event(self, step: int) -> bool:
        return self.enabled and step > 0 and step % self.interval == 0

    def update(self, step: int, loss: float) -> float:
        """Call at every step with that step's pre-update MFI loss (only read at events); returns alpha."""
        if not self.is_event(step):
            return self.alpha
        if step >= self.warmup and self.valid >= 2:
            stored = self.history[: self.valid] if self.official_window else self.history[-self.valid :]
            avg = float(stored.mean())
            if loss > self.threshold * avg:
                self.alpha = min(self.alpha * self.increase, self.hi)
            if loss < avg / self.threshold:
                self.alpha = max(self.alpha * self.decrease, self.lo)
        self.history = np.roll(self.history, -1)
        self.history[-1] = loss
        self.valid = min(self.valid + 1, len(self.history))
        return self.alpha

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "history": self.history.tolist(), "valid": self.valid}

    def load_state_dict(self, state: dict) -> None:
        self.alpha = float(state["alpha"])
        self.history = np.asarray(state["history"], dtype=np.float64)
        self.valid = int(state["valid"])
