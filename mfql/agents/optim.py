"""Adam and global-norm clipping on lists of tensors, with the step count and learning rate as tensors.

torch.optim.Adam reads a tensor learning rate back to the host on CPU and keeps Python state per step, so
it can neither run without host synchronisations nor compile into the update's graph. ``adam_step`` does the
arithmetic of torch.optim.Adam's capturable path (and optax.adam: m_hat / (sqrt(v_hat) + eps)) on device
tensors only. ``foreach=False`` uses one op per tensor instead of the fused list ops, which ``torch.vmap``
(packed seeds) cannot batch.
"""

from __future__ import annotations

import torch


def clip_by_global_norm(grads: list[torch.Tensor], max_norm: float,
                        foreach: bool = True) -> tuple[list[torch.Tensor], torch.Tensor]:
    """optax ``clip_by_global_norm``: scale by max_norm / norm only when norm exceeds max_norm."""
    norms = torch._foreach_norm(grads) if foreach else [torch.linalg.vector_norm(g) for g in grads]
    norm = torch.linalg.vector_norm(torch.stack(norms))
    scale = torch.where(norm < max_norm, torch.ones_like(norm), max_norm / norm)
    return (torch._foreach_mul(grads, scale) if foreach else [g * scale for g in grads]), norm


@torch.no_grad()
def adam_step(params: list[torch.Tensor], grads: list[torch.Tensor], state: dict, betas: tuple[float, float],
              eps: float, foreach: bool = True) -> None:
    """One Adam step, in place on ``params`` and ``state`` (count, lr, exp_avg, exp_avg_sq)."""
    beta1, beta2 = betas
    state["count"].add_(1)
    bias_correction1 = 1 - torch.pow(beta1, state["count"])
    bias_correction2_sqrt = (1 - torch.pow(beta2, state["count"])).sqrt()
    neg_step_size = -(bias_correction1 / state["lr"])
    if foreach:
        torch._foreach_lerp_(state["exp_avg"], grads, 1 - beta1)
        torch._foreach_mul_(state["exp_avg_sq"], beta2)
        torch._foreach_addcmul_(state["exp_avg_sq"], grads, grads, 1 - beta2)
        denom = torch._foreach_sqrt(state["exp_avg_sq"])
        torch._foreach_div_(denom, bias_correction2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_mul_(denom, neg_step_size)
        torch._foreach_addcdiv_(params, state["exp_avg"], denom)
        return
    # lerp_, addcmul_ and addcdiv_ written out: vmap has no batching rule for them (a slow per-seed loop).
    for param, grad, exp_avg, exp_avg_sq in zip(params, grads, state["exp_avg"], state["exp_avg_sq"]):
        exp_avg.add_((grad - exp_avg) * (1 - beta1))
        exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
        param.add_(exp_avg / ((exp_avg_sq.sqrt() / bias_correction2_sqrt + eps) * neg_step_size))


class Adam:
    def __init__(self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = params
        device = params[0].device
        self.betas, self.eps = betas, eps
        self.state = {
            "count": torch.zeros((), device=device),  # float32, as torch.optim.Adam keeps its step
            "lr": torch.tensor(float(lr), device=device),  # written in place by schedules
            "exp_avg": [torch.zeros_like(p) for p in params],
            "exp_avg_sq": [torch.zeros_like(p) for p in params],
        }

    @property
    def lr(self) -> torch.Tensor:
        return self.state["lr"]

    @property
    def count(self) -> torch.Tensor:
        return self.state["count"]

    def step(self, grads: list[torch.Tensor]) -> None:
        adam_step(self.params, grads, self.state, self.betas, self.eps)

    def state_dict(self) -> dict:
        return self.state

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        self.state["count"].copy_(state["count"])
        self.state["lr"].copy_(state["lr"])
        torch._foreach_copy_(self.state["exp_avg"], state["exp_avg"])
        torch._foreach_copy_(self.state["exp_avg_sq"], state["exp_avg_sq"])
