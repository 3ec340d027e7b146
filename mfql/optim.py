"""Adam and global-norm clipping on lists of tensors, with the step count and learning rate as tensors.

torch.optim.Adam reads a tensor learning rate back to the host on CPU and keeps Python state per step, so
it can neither run without host synchronisations nor compile into the update's graph. This Adam does the
arithmetic of torch.optim.Adam's capturable path (and optax.adam: m_hat / (sqrt(v_hat) + eps)) with foreach
ops on device tensors only.
"""

from __future__ import annotations

import torch


def clip_by_global_norm(grads: list[torch.Tensor], max_norm: float) -> tuple[list[torch.Tensor], torch.Tensor]:
    """optax ``clip_by_global_norm``: scale by max_norm / norm only when norm exceeds max_norm."""
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    scale = torch.where(norm < max_norm, torch.ones_like(norm), max_norm / norm)
    return torch._foreach_mul(grads, scale), norm


class Adam:
    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = params
        device = params[0].device
        self.lr = torch.tensor(float(lr), device=device)  # written in place by schedules
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.count = torch.zeros((), device=device)  # float32, as torch.optim.Adam keeps its step
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor]) -> None:
        self.count.add_(1)
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - self.beta2)
        bias_correction1 = 1 - torch.pow(self.beta1, self.count)
        bias_correction2_sqrt = (1 - torch.pow(self.beta2, self.count)).sqrt()
        neg_step_size = -(bias_correction1 / self.lr)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_mul_(denom, neg_step_size)
        torch._foreach_addcdiv_(self.params, self.exp_avg, denom)

    def state_dict(self) -> dict:
        return {"count": self.count, "lr": self.lr, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.count.copy_(state["count"])
        self.lr.copy_(state["lr"])
        torch._foreach_copy_(self.exp_avg, state["exp_avg"])
        torch._foreach_copy_(self.exp_avg_sq, state["exp_avg_sq"])
