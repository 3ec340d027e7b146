"""Networks of MeanFlow-QL: the 2-head critic, the MFDiT_SIM actor (docs/method.md, "Networks") and a small MLP actor.

Parameter layout mirrors the official flax modules so weights map one to one (a flax kernel ``[in, out]``
is our ``weight.T``; the critic's vmapped kernels ``[2, in, out]`` are our ``kernel`` as stored).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# Truncated-normal correction: std of a unit normal truncated to +-2 (flax/jax constant).
_TRUNC_STD = 0.87962566103423978


def variance_scaling_(weight: torch.Tensor, scale: float, fan_in: int) -> None:
    """flax ``variance_scaling(scale, 'fan_in', 'truncated_normal')``: truncated at +-2 std."""
    std = math.sqrt(scale / fan_in) / _TRUNC_STD
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2 * std, b=2 * std)


def dense(in_dim: int, out_dim: int, zero: bool = False) -> nn.Linear:
    """Dense layer with the official actor init: 'kaiming_normal(0.01)' kernels (or zeros), zero bias."""
    layer = nn.Linear(in_dim, out_dim)
    if zero:
        nn.init.zeros_(layer.weight)
    else:
        variance_scaling_(layer.weight, 0.01, in_dim)
    nn.init.zeros_(layer.bias)
    return layer


class ScaledRMSNorm(nn.Module):
    """RMSNorm of the official DiT: ``x / rms(x) * sqrt(dim) * g`` (note the sqrt(dim); not torch's RMSNorm)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.scale = math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.scale * self.weight


class LayerNorm(nn.Module):
    """``nn.LayerNorm`` that compiles: dynamo cannot trace ``F.layer_norm`` under forward-mode AD (torch 2.13),
    so a compiled graph gets it written out (equal up to float round-off); eager code keeps the fused kernel,
    which on CPU is several times faster than the written-out ops and their backward."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():
            return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)
        centred = x - x.mean(-1, keepdim=True)
        return centred * torch.rsqrt(centred.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight + self.bias


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of raw t in [0, 1] (cos first, no x1000 scaling), then a 2-layer SiLU MLP."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        half = freq_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half), persistent=False)
        self.mlp = nn.Sequential(dense(freq_dim, dim), nn.SiLU(), dense(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.reshape(-1, 1) * self.freqs
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class Attention(nn.Module):
    """Multi-head self-attention with qkv bias and qk-norm, as in the official block."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = dense(dim, 3 * dim)
        self.q_norm = ScaledRMSNorm(self.head_dim)
        self.k_norm = ScaledRMSNorm(self.head_dim)
        self.proj = dense(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        if tokens == 1:
            # One token: the softmax over a single key is exactly 1, so attention returns its value.
            # Skipping q, k and qk-norm gives the same output and the same (zero) gradients to them.
            return self.proj(F.linear(x, self.qkv.weight[2 * dim :], self.qkv.bias[2 * dim :]))
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = self.q_norm(qkv[0]), self.k_norm(qkv[1]), qkv[2]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class DiTBlock(nn.Module):
    """adaLN-Zero DiT block with the official extra outer residual: x <- x + r * (block(x) - x)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, residual_scale: float):
        super().__init__()
        self.norm1 = ScaledRMSNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.norm2 = ScaledRMSNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(dense(dim, hidden), nn.GELU(approximate="tanh"), dense(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), dense(dim, 6 * dim, zero=True))
        self.residual_scale = residual_scale

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        mods = self.adaLN_modulation(c).unsqueeze(1).chunk(6, dim=-1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        x1 = x + gate_msa * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        x2 = x1 + gate_mlp * self.mlp(modulate(self.norm2(x1), shift_mlp, scale_mlp))
        return x + self.residual_scale * (x2 - x)


class FinalLayer(nn.Module):
    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = ScaledRMSNorm(dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), dense(dim, 2 * dim, zero=True))
        self.linear = dense(dim, out_dim, zero=True)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).unsqueeze(1).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class MFDiT(nn.Module):
    """The official MFDiT_SIM actor g(s, a_t, t): one token, t-only conditioning, zero output at init.

    ``t`` is ``[B]``, or ``[1]`` for one t shared by the batch (one-step actions, t = 1): the conditioning
    (timestep embedding, every adaLN modulation) then runs on one row and broadcasts, which is what each row
    would compute, up to float round-off (tested)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dim: int = 256, depth: int = 3,
                 num_heads: int = 2, mlp_ratio: float = 4.0, residual_scale: float = 0.1):
        super().__init__()
        self.feature_embed = dense(obs_dim + action_dim, hidden_dim)
        self.pos_embed = nn.Parameter(torch.randn(1, 1, hidden_dim) * 0.005)
        self.t_embedder = TimestepEmbedder(hidden_dim)
        self.blocks = nn.ModuleList(
            [DiTBlock(hidden_dim, num_heads, mlp_ratio, residual_scale) for _ in range(depth)]
        )
        self.final_layer = FinalLayer(hidden_dim, action_dim)

    def forward(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = self.feature_embed(torch.cat([obs, a_t], dim=-1)).unsqueeze(1) + self.pos_embed
        c = self.t_embedder(t)
        for block in self.blocks:
            x = block(x, c)
        return self.final_layer(x, c)[:, 0]


class MLPActor(nn.Module):
    """Small CPU actor g(s, a_t, t): MLP on concat(obs, a_t, t) with LayerNorm; zero last layer like MFDiT."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: tuple[int, ...] = (256, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        in_dim = obs_dim + action_dim + 1
        for width in hidden_dims:
            layers += [nn.Linear(in_dim, width), nn.GELU(approximate="tanh"), LayerNorm(width)]
            in_dim = width
        self.trunk = nn.Sequential(*layers)
        self.out = dense(in_dim, action_dim, zero=True)

    def forward(self, obs: torch.Tensor, a_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``t``: ``[B]``, or ``[1]`` shared by the batch (as MFDiT's)."""
        t = t.reshape(-1, 1).expand(obs.shape[0], 1)
        return self.out(self.trunk(torch.cat([obs, a_t, t], dim=-1)))


class EnsembleDense(nn.Module):
    """Independent dense layers for each ensemble member; ``kernel`` is ``[E, in, out]`` like flax's vmap."""

    def __init__(self, ensemble: int, in_dim: int, out_dim: int):
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))
        bound = math.sqrt(6.0 / (in_dim + out_dim))  # Glorot uniform, per member
        nn.init.uniform_(self.kernel, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.kernel)


class EnsembleLayerNorm(nn.Module):
    def __init__(self, ensemble: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(ensemble, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.scale + self.bias


class Critic(nn.Module):
    """Q(s, a) with independent heads: MLP, GELU(tanh) then LayerNorm on every hidden layer (docs/method.md,
    "Networks")."""

    def __init__(self, obs_dim: int, action_dim: int, hidden_dims: tuple[int, ...] = (512, 512, 512, 512),
                 num_heads: int = 2):
        super().__init__()
        self.num_heads = num_heads
        layers: list[nn.Module] = []
        in_dim = obs_dim + action_dim
        for width in hidden_dims:
            layers += [EnsembleDense(num_heads, in_dim, width), nn.GELU(approximate="tanh"),
                       EnsembleLayerNorm(num_heads, width)]
            in_dim = width
        layers.append(EnsembleDense(num_heads, in_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Returns Q of shape ``[heads, batch]``."""
        x = torch.cat([obs, action], dim=-1)
        return self.net(x.unsqueeze(0).expand(self.num_heads, -1, -1)).squeeze(-1)


def make_actor(kind: str, obs_dim: int, action_dim: int, cfg) -> nn.Module:
    if kind == "dit":
        return MFDiT(obs_dim, action_dim, cfg.actor_hidden_dim, cfg.actor_depth, cfg.actor_num_heads,
                     cfg.actor_mlp_ratio, cfg.actor_residual_scale)
    if kind == "mlp":
        return MLPActor(obs_dim, action_dim, tuple(cfg.mlp_actor_hidden_dims))
    raise ValueError(f"agent.actor={kind!r} is not a known actor (valid: dit, mlp)")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
