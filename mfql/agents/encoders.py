"""Image encoders for the pixel-based tasks: the IMPALA encoder as FQL (and OGBench's reference agents) build it.

Per stack: a 3x3 convolution, a 3x3 max-pool of stride 2 with TensorFlow's 'SAME' padding (one row and column
of -inf on the high side, so 64 -> 32 -> 16 -> 8 with the same windows as FQL's flax code), then residual
blocks of two ReLU + 3x3 convolutions. After the stacks: ReLU, flatten, an MLP with a final activation.
Inputs are uint8 images [..., H, W, C] (channels last, as stored), scaled to [0, 1] here. Initialisation as
FQL: Xavier-uniform weights, zero biases. The flattening order (C, H, W here, H, W, C in flax) changes no
parameter count and no behaviour, only the layout of the first MLP weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# FQL's encoder_modules: stack widths, residual blocks per stack, MLP widths.
ENCODERS = {
    "impala": {"stack_sizes": (16, 32, 32), "num_blocks": 2, "mlp_hidden_dims": (512,)},
    "impala_small": {"stack_sizes": (16, 32, 32), "num_blocks": 1, "mlp_hidden_dims": (512,)},  # FQL's pixel runs
    "impala_large": {"stack_sizes": (64, 128, 128), "num_blocks": 2, "mlp_hidden_dims": (1024,)},
    "impala_debug": {"stack_sizes": (4, 4), "num_blocks": 1, "mlp_hidden_dims": (512,)},
}


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ResnetStack(nn.Module):
    def __init__(self, in_channels: int, features: int, num_blocks: int):
        super().__init__()
        self.conv_in = conv3x3(in_channels, features)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), conv3x3(features, features), nn.ReLU(),
                                                  conv3x3(features, features)) for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = same_max_pool(self.conv_in(x))
        for block in self.blocks:
            x = x + block(x)
        return x


def same_max_pool(x: torch.Tensor, window: int = 3, stride: int = 2) -> torch.Tensor:
    """Max-pool with TensorFlow/flax 'SAME' padding: output ceil(size / stride), the padding's extra row and
    column on the high side."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((-(-size // stride) - 1) * stride + window - size, 0)
        pads += [total // 2, total - total // 2]
    return F.max_pool2d(F.pad(x, pads, value=float("-inf")), window, stride)


class ImpalaEncoder(nn.Module):
    def __init__(self, in_channels: int, height: int, width: int, stack_sizes=(16, 32, 32), num_blocks: int = 1,
                 mlp_hidden_dims=(512,), layer_norm: bool = False):
        super().__init__()
        stacks, channels = [], in_channels
        for features in stack_sizes:
            stacks.append(ResnetStack(channels, features, num_blocks))
            channels = features
            height, width = -(-height // 2), -(-width // 2)
        self.stacks = nn.Sequential(*stacks)
        self.norm = nn.LayerNorm([channels, height, width]) if layer_norm else nn.Identity()
        layers, width_in = [], channels * height * width
        for dim in mlp_hidden_dims:
            linear = nn.Linear(width_in, dim)
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)
            layers += [linear, nn.GELU(approximate="tanh")]  # flax's nn.gelu: the tanh form
            layers += [nn.LayerNorm(dim)] if layer_norm else []
            width_in = dim
        self.mlp = nn.Sequential(*layers)
        self.out_dim = width_in

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[..., H, W, C] uint8 (or float in [0, 255]) -> [..., out_dim]."""
        lead = images.shape[:-3]
        # scaled in float32 as FQL's encoder does, then in the weights' dtype (float64 in a parity check)
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
        x = x.to(self.stacks[0].conv_in.weight.dtype)
        x = self.norm(F.relu(self.stacks(x)))
        return self.mlp(x.flatten(1)).reshape(*lead, self.out_dim)


def make_encoder(name: str, image_shape: tuple[int, int, int]) -> ImpalaEncoder:
    """An encoder of FQL's by name, for images of shape (H, W, C) (C: 3 x frame stack)."""
    if name not in ENCODERS:
        raise ValueError(f"encoder={name!r} is not known (valid: {', '.join(ENCODERS)})")
    height, width, channels = image_shape
    return ImpalaEncoder(channels, height, width, **ENCODERS[name])
