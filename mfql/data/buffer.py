"""Replay buffer: the offline dataset followed by online transitions, sampled uniformly, kept on the device.

Like the official (FQL) buffer it has ``max(capacity, N + 1)`` rows and wraps around, so online data may
overwrite the oldest offline rows of a dataset that already fills it (humanoidmaze: 2M transitions).

The offline rows and the online rows are stored apart: the dataset once, read-only, and shareable by the
seeds of a packed job (``offline=``), and each buffer's own online rows. Buffer position ``p`` holds online
row ``(p - N) mod max_rows`` once that row was written (an online write "overwrites" offline row ``p`` by
shadowing it), else offline row ``p``: exactly the rows of one wrapped array of ``max_rows`` rows.
"""

from __future__ import annotations

import numpy as np
import torch

from mfql.data.datasets import KEYS
from mfql.data.pixels import FrameStore, random_shift


def offline_storage(dataset: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """The dataset as float32 device tensors, to be shared by the buffers of a packed job."""
    return {key: torch.as_tensor(dataset[key], dtype=torch.float32).to(device) for key in KEYS}


class ReplayBuffer:
    # ``next_actions``: the action stored at the next buffer position (the last position's own at the end), as
    # FQL's datasets give it to the methods that ask for it (ReBRAC's critic); wrong at a trajectory's end there
    # too. Set it to add them to every batch.
    next_actions = False

    def __init__(self, dataset: dict[str, np.ndarray], capacity: int, online_steps: int, device: torch.device,
                 offline: dict[str, torch.Tensor] | None = None):
        self.num_offline = len(dataset["observations"])
        self.max_rows = max(capacity, self.num_offline + 1)
        self.device = device
        self.offline = offline if offline is not None else offline_storage(dataset, device)
        online_rows = min(online_steps, self.max_rows)  # online row j lives in slot j mod max_rows
        self.online = {key: torch.zeros((online_rows, *value.shape[1:]), device=device)
                       for key, value in self.offline.items()}
        self.size = self.num_offline
        self.num_online = 0
        # Online transitions go through one pinned host row and one non-blocking copy per step. The row is
        # only rewritten after the next action was read back to the host, which waits for that copy.
        self.widths = [int(np.prod(self.offline[key].shape[1:])) for key in KEYS]
        self.staging = torch.empty(sum(self.widths), pin_memory=device.type == "cuda")

    def add(self, transition: dict[str, np.ndarray]) -> None:
        slot = self.num_online % self.max_rows
        torch.cat([torch.as_tensor(transition[key], dtype=torch.float32).reshape(-1) for key in KEYS],
                  out=self.staging)
        values = self.staging.to(self.device, non_blocking=True).split(self.widths)
        for key, value in zip(KEYS, values):
            self.online[key][slot] = value.reshape(self.online[key].shape[1:])
        self.num_online += 1
        self.size = min(self.size + 1, self.max_rows)

    def gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """The rows at buffer positions ``idx`` (any shape), with ``next_actions`` if asked for."""
        rows = self.select(idx, KEYS)
        if self.next_actions:
            rows["next_actions"] = self.select((idx + 1).clamp(max=self.size - 1), ("actions",))["actions"]
        return rows

    def select(self, idx: torch.Tensor, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """``keys`` of the rows at buffer positions ``idx``: the online row where one shadows the offline one."""
        if self.num_online == 0:
            return {key: self.offline[key][idx] for key in keys}
        written = min(self.num_online, self.max_rows)
        slot = (idx - self.num_offline) % self.max_rows
        is_online = slot < written
        offline_idx, online_idx = idx.clamp(max=self.num_offline - 1), slot.clamp(max=written - 1)
        out = {}
        for key in keys:
            value = self.offline[key]
            mask = is_online.reshape(*idx.shape, *[1] * (value.dim() - 1))
            out[key] = torch.where(mask, self.online[key][online_idx], value[offline_idx])
        return out

    def positions(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        return self.gather(self.positions(batch_size, generator))

    def online_state(self) -> dict:
        """Only what the online phase wrote, for the resume checkpoint (the dataset is reloaded from disk)."""
        written = min(self.num_online, self.max_rows)
        return {"num_online": self.num_online, "rows": {k: v[:written].cpu() for k, v in self.online.items()}}

    def load_online_state(self, state: dict) -> None:
        count = state["rows"]["observations"].shape[0]
        for key in KEYS:
            self.online[key][:count] = state["rows"][key].to(self.device)
        self.num_online = int(state["num_online"])
        self.size = min(self.num_offline + self.num_online, self.max_rows)


class PixelBuffer:
    """The offline buffer of a pixel task (pixel tasks are offline only): frames once as uint8 (on the device
    when they fit in a quarter of its free memory, else in host memory), stacks built from indices,
    FQL's random-shift augmentation on each batch drawn. ``offline``: the frame store shared by a packed job."""
    next_actions = False  # as ReplayBuffer's

    def __init__(self, dataset: dict[str, np.ndarray], frame_stack: int, p_aug: float | None, device: torch.device,
                 offline: FrameStore | None = None):
        self.store = offline if offline is not None else pixel_storage(dataset, frame_stack, device)
        rows = self.store.transitions
        self.rows = {key: torch.as_tensor(dataset[key], dtype=torch.float32).to(device)[rows]
                     for key in ("actions", "rewards", "masks")}
        self.num_offline = self.size = len(rows)
        self.num_online = 0
        self.p_aug = p_aug or 0.0
        self.device = device

    def gather(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        obs, next_obs = self.store.observations(idx)
        rows = {"observations": obs, "next_observations": next_obs, **{k: v[idx] for k, v in self.rows.items()}}
        if self.next_actions:
            rows["next_actions"] = self.rows["actions"][(idx + 1).clamp(max=self.size - 1)]
        return rows

    def positions(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        batch = self.gather(self.positions(batch_size, generator))
        if self.p_aug > 0:
            batch["observations"], batch["next_observations"] = random_shift(
                batch["observations"], batch["next_observations"], generator, self.p_aug)
        return batch

    def online_state(self) -> dict:
        return {"num_online": 0, "rows": {}}

    def load_online_state(self, state: dict) -> None:
        pass


def pixel_storage(dataset: dict[str, np.ndarray], frame_stack: int, device: torch.device) -> FrameStore:
    frames = dataset["frames"]
    on_device = device.type != "cuda" or frames.nbytes < torch.cuda.mem_get_info(device)[0] // 4
    return FrameStore(frames, dataset["ends"], frame_stack, device, on_device=on_device)


def sample_packed(buffers: list, batch_size: int, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
    """One batch per (buffer, generator), stacked on a leading seed axis: each the batch ``buffer.sample``
    would draw with that generator. ``buffers`` share one offline storage (or are one buffer)."""
    if isinstance(buffers[0], PixelBuffer):  # each seed its own positions and augmentation draws
        per_seed = [b.sample(batch_size, g) for b, g in zip(buffers, generators)]
        return {key: torch.stack([rows[key] for rows in per_seed]) for key in per_seed[0]}
    idx = torch.stack([b.positions(batch_size, g) for b, g in zip(buffers, generators)])
    if all(b is buffers[0] for b in buffers) or all(b.num_online == 0 for b in buffers):
        return buffers[0].gather(idx)  # one gather from the shared rows for every seed
    per_seed = [b.gather(i) for b, i in zip(buffers, idx)]
    return {key: torch.stack([rows[key] for rows in per_seed]) for key in per_seed[0]}
