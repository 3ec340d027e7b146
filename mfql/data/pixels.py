"""Pixel observations that fit in memory: every frame stored once, as uint8, and frame stacks, next
observations and augmentation built from indices when a batch is drawn.

OGBench's visual files hold each trajectory's frames s_0 .. s_T with ``terminals`` = 1 on the last; the
transitions are (s_t, a_t, s_{t+1}) for every t with ``terminals[t] == 0``. ogbench's loader materialises
``next_observations`` as a second copy of (almost) every frame and FQL then pre-stacks three frames per row
of both arrays: 6x the frames' size, 74 GB for a 1M-transition 64x64x3 dataset. Here a batch reads
frame indices: the observation of transition t is the stack of frames (t-2, t-1, t), the next observation
the stack (t-1, t, t+1), each index clamped to the trajectory's first frame (episode starts repeat the first
frame, as FQL does). Frames are concatenated on the channel axis, oldest first, as FQL's stacking.
"""

from __future__ import annotations

import numpy as np
import torch


def episode_starts(terminals: np.ndarray) -> np.ndarray:
    """For every frame, the index of its trajectory's first frame (a trajectory ends at terminals == 1)."""
    ends = np.flatnonzero(np.asarray(terminals) > 0)
    firsts = np.concatenate([[0], ends[:-1] + 1]) if len(ends) else np.zeros(1, dtype=np.int64)
    frame = np.arange(len(terminals))
    return firsts[np.searchsorted(firsts, frame, side="right") - 1]


class FrameStore:
    """uint8 frames [M, H, W, C] once (on ``device`` if given room there, else in host memory), with the
    transitions' frame indices."""

    def __init__(self, frames: np.ndarray, terminals: np.ndarray, stack: int, device: torch.device,
                 on_device: bool = True):
        if frames.dtype != np.uint8 or frames.ndim != 4:
            raise ValueError(f"pixel frames must be uint8 [frames, H, W, C], got {frames.dtype} {frames.shape}")
        home = device if on_device else torch.device("cpu")
        self.frames = torch.from_numpy(np.ascontiguousarray(frames)).to(home)  # on the CPU: the array itself
        self.device = device
        self.stack = stack
        self.starts = torch.as_tensor(episode_starts(terminals), dtype=torch.long, device=home)
        # transition t: observation frame t, next observation frame t + 1, for each non-final frame
        self.transitions = torch.as_tensor(np.flatnonzero(np.asarray(terminals) == 0), dtype=torch.long,
                                           device=device)
        self.offsets = torch.arange(-(stack - 1), 2, device=home)  # frames t-stack+1 .. t+1, oldest first

    @property
    def nbytes(self) -> int:
        """Bytes held for the pixel data: the frames and the index arrays."""
        return sum(t.numel() * t.element_size() for t in (self.frames, self.starts, self.transitions))

    def window(self, frame: torch.Tensor, length: int) -> torch.Tensor:
        """uint8 [..., length, H, W, C]: frames frame-stack+1 .. frame-stack+length, each index clamped to its
        trajectory's first frame (``frame``: any shape of frame indices)."""
        frame = frame.to(self.frames.device)
        ids = torch.maximum(frame.unsqueeze(-1) + self.offsets[:length], self.starts[frame].unsqueeze(-1))
        return self.frames[ids]

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        """[..., stack, H, W, C] -> [..., H, W, C x stack] (frames on the channel axis) on the device."""
        images = images.movedim(-4, -2)
        return images.reshape(*images.shape[:-2], -1).to(self.device, non_blocking=True)

    def stacked(self, frame: torch.Tensor) -> torch.Tensor:
        """Stacks ending at frames ``frame`` (any shape) -> uint8 [..., H, W, C x stack] on the device."""
        return self.layout(self.window(frame, self.stack))

    def observations(self, transition: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(observations, next observations) of transitions ``transition`` (indices into ``transitions``): one
        gather of stack + 1 frames per transition, the first ``stack`` its observation, the last its next."""
        images = self.window(self.transitions[transition], self.stack + 1)
        return self.layout(images[..., :-1, :, :, :]), self.layout(images[..., 1:, :, :, :])


def random_shift(observations: torch.Tensor, next_observations: torch.Tensor, generator: torch.Generator | None,
                 probability: float, padding: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """FQL's augmentation: with probability ``probability`` (one draw per batch), every image [B, H, W, C] of
    the batch is padded by ``padding`` pixels (edge values repeated) and cropped back at a random offset in
    [0, 2 x padding]^2, the same offset for a transition's observation and next observation. Edge padding then
    cropping is reading clamped indices; the coin is applied with ``where``, so no value is read back to the
    host (no synchronisation in a CUDA run)."""
    device = observations.device
    apply = torch.rand((), generator=generator, device=device) < probability
    batch, height, width = observations.shape[-4], observations.shape[-3], observations.shape[-2]
    offsets = torch.randint(0, 2 * padding + 1, (batch, 2), generator=generator, device=device) - padding
    rows = (offsets[:, 0, None] + torch.arange(height, device=device)).clamp(0, height - 1)[:, :, None]
    cols = (offsets[:, 1, None] + torch.arange(width, device=device)).clamp(0, width - 1)[:, None, :]
    batch_ids = torch.arange(batch, device=device)[:, None, None]
    return tuple(torch.where(apply, images[batch_ids, rows, cols], images)
                 for images in (observations, next_observations))
