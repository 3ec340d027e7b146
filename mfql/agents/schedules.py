"""Step-indexed schedules: the actor learning rate and the adaptive BC coefficient alpha (docs/method.md: actor
LR, α controller).

Both work on device tensors with tensor ops only, so the training update never reads a value back to the
host and compiles as one graph; they also take plain Python numbers (tests, the toy run).
"""

from __future__ import annotations

import math

import torch


def actor_lr(update_count, lr: float, min_ratio: float, pretrain_steps: int, warmup_frac: float) -> torch.Tensor:
    """Linear warm-up from 0, cosine to ``lr * min_ratio`` at ``pretrain_steps``, then constant (online).

    ``update_count`` is the number of optimizer updates done before this one (0 for the first update).
    Computed in float64, as the official code's Python floats, and returned as a float64 tensor.
    """
    count = torch.as_tensor(update_count).to(torch.float64)
    warmup = int(warmup_frac * pretrain_steps)
    progress = ((count - warmup) / max(pretrain_steps - warmup, 1)).clamp(0.0, 1.0)
    cosine = lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + torch.cos(math.pi * progress)))
    ramp = lr * count / warmup if warmup > 0 else cosine
    return torch.where(count < warmup, ramp, cosine)


class AlphaController:
    """Multiplicative controller of the BC (MFI) weight, event-driven every ``interval`` steps.

    At an event step past the warm-up, alpha grows when the current MFI loss exceeds ``threshold`` times the
    running average of past event losses and shrinks when it falls below 1/threshold of it; the new value is
    used in that same step's loss. Every event (warm-up included) appends the loss to a rolling history.
    State (alpha, history, number of valid entries) lives in float64/long tensors on the training device.
    """

    def __init__(self, alpha0: float, pretrain_steps: int, warmup_frac: float, interval: int = 2000,
                 threshold: float = 5.0, increase: float = 1.2, decrease: float = 0.8, window: int = 20,
                 bounds: tuple[float, float] = (0.1, 10.0), enabled: bool = True, official_window: bool = True,
                 device: str | torch.device = "cpu"):
        self.warmup = int(warmup_frac * pretrain_steps)
        self.interval, self.threshold = interval, threshold
        self.increase, self.decrease = increase, decrease
        self.lo, self.hi = bounds[0] * alpha0, bounds[1] * alpha0
        self.enabled = enabled
        # Shape [1], not a scalar: torch 2.13's inductor drops in-place writes to 0-d float64 tensors on CPU.
        self.alpha = torch.tensor([float(alpha0)], dtype=torch.float64, device=device)
        self.history = torch.zeros(window, dtype=torch.float64, device=device)
        self.valid = torch.zeros((), dtype=torch.long, device=device)
        # The official average reads the first `valid` slots while writing at the end (only right once full).
        slots = torch.arange(window, device=device)
        self.official_window = official_window
        self.averaged = (lambda valid: slots < valid) if official_window else (lambda valid: slots >= window - valid)

    def unfilled_after_warmup(self) -> bool:
        """True when the official average (first ``valid`` slots, written at the end) can act before the
        history is full: warm-up shorter than ``window`` events. Until the history is about half full, that
        average reads mostly empty slots, falls below a fifth of the current loss, and alpha grows x1.2 at every
        event (by default: offline budgets under 400k steps; the paper's are 1M and 500k)."""
        return self.enabled and self.official_window and self.warmup < self.interval * len(self.history)

    def is_event(self, step):
        step = torch.as_tensor(step, device=self.alpha.device)
        return (step > 0) & (step % self.interval == 0) & self.enabled

    def next_state(self, step, loss, state: dict | None = None) -> dict[str, torch.Tensor]:
        """The controller's state after this step's pre-update MFI loss, from ``state`` (default: the current
        one) without changing anything: a pure function, so that it can run inside a gradient transform."""
        alpha, history, valid = (state or self.state_dict()).values()
        step = torch.as_tensor(step, device=alpha.device)
        loss = torch.as_tensor(loss, device=alpha.device).detach().to(torch.float64)
        event = self.is_event(step)
        avg = torch.where(self.averaged(valid), history, 0.0).sum() / valid.clamp_min(1)
        adapt = event & (step >= self.warmup) & (valid >= 2)
        new = torch.where(adapt & (loss > self.threshold * avg), (alpha * self.increase).clamp(max=self.hi), alpha)
        new = torch.where(adapt & (loss < avg / self.threshold), (new * self.decrease).clamp(min=self.lo), new)
        shifted = torch.cat([history[1:], loss.reshape(1)])
        return {"alpha": new, "history": torch.where(event, shifted, history),
                "valid": torch.where(event, (valid + 1).clamp(max=len(history)), valid)}

    def update(self, step, loss) -> torch.Tensor:
        """Call at every step with that step's pre-update MFI loss (only used at events); returns alpha."""
        self.load_state_dict(self.next_state(step, loss))
        return self.alpha[0]

    def state_dict(self) -> dict:
        return {"alpha": self.alpha, "history": self.history, "valid": self.valid}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for name in ("alpha", "history", "valid"):
            getattr(self, name).copy_(torch.as_tensor(state[name]).reshape(getattr(self, name).shape))


def first_step(method: str, parity: str) -> int:
    """The training loop's first step for ``method`` (FQL's loop starts at 1, the official MeanFlow-QL loop at 0)."""
    from mfql.agents import METHODS

    return METHODS[method].first_step(parity)


def evaluation_steps(cfg) -> list[int]:
    """The steps a run evaluates at: every ``eval_interval`` steps of its loop and at its last step (none with
    ``eval_episodes=0``)."""
    if int(cfg.eval_episodes) == 0:
        return []
    last = int(cfg.offline_steps) + int(cfg.online_steps)
    start = first_step(cfg.method, cfg.parity)
    return sorted({s for s in range(start, last + 1) if s % int(cfg.eval_interval) == 0} | {last})
