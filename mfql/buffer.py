"""Replay buffer: the offline dataset followed by online transitions, sampled uniformly, kept on the device.

Like the official (FQL) buffer it has ``max(capacity, N + 1)`` rows and wraps around, so online data may
overwrite the oldest offline rows of a dataset that already fills it (humanoidmaze: 2M transitions).
"""

from __future__ import annotations

import numpy as np
import torch

from mfql.data import KEYS


class ReplayBuffer:
    def __init__(self, dataset: dict[str, np.ndarray], capacity: int, online_steps: int, device: torch.device):
        self.num_offline = len(dataset["observations"])
        self.max_rows = max(capacity, self.num_offline + 1)
        rows = min(self.max_rows, self.num_offline + online_steps)
        self.device = device
        self.storage = {}
        for key in KEYS:
            array = torch.as_tensor(dataset[key], dtype=torch.float32)
            if rows > self.num_offline:
                pad = torch.zeros((rows - self.num_offline, *array.shape[1:]), dtype=torch.float32)
                array = torch.cat([array, pad])
            self.storage[key] = array.to(device)
        self.size = self.num_offline
        self.num_online = 0
        # Online transitions go through one pinned host row and one non-blocking copy per step. The row is
        # only rewritten after the next action was read back to the host, which waits for that copy.
        self.widths = [int(np.prod(self.storage[key].shape[1:])) for key in KEYS]
        self.staging = torch.empty(sum(self.widths), pin_memory=device.type == "cuda")

    def _online_rows(self, count: int) -> torch.Tensor:
        return (self.num_offline + torch.arange(count)) % self.max_rows

    def add(self, transition: dict[str, np.ndarray]) -> None:
        row = (self.num_offline + self.num_online) % self.max_rows
        torch.cat([torch.as_tensor(transition[key], dtype=torch.float32).reshape(-1) for key in KEYS],
                  out=self.staging)
        values = self.staging.to(self.device, non_blocking=True).split(self.widths)
        for key, value in zip(KEYS, values):
            self.storage[key][row] = value.reshape(self.storage[key].shape[1:])
        self.num_online += 1
        self.size = min(self.size + 1, self.max_rows)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch_size,), device=self.device, generator=generator)
        return {key: value[idx] for key, value in self.storage.items()}

    def sample_packed(self, batch_size: int, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
        """One batch per generator, stacked on a leading seed axis: each the batch ``sample`` would draw."""
        idx = torch.stack([torch.randint(0, self.size, (batch_size,), device=self.device, generator=g)
                           for g in generators])
        return {key: value[idx] for key, value in self.storage.items()}

    def online_state(self) -> dict:
        """Only what the online phase wrote, for the resume checkpoint (the dataset is reloaded from disk)."""
        rows = self._online_rows(min(self.num_online, self.max_rows)).to(self.device)
        return {"num_online": self.num_online, "rows": {k: v[rows].cpu() for k, v in self.storage.items()}}

    def load_online_state(self, state: dict) -> None:
        count = state["rows"]["observations"].shape[0]
        rows = self._online_rows(count).to(self.device)
        for key in KEYS:
            self.storage[key][rows] = state["rows"][key].to(self.device)
        self.num_online = int(state["num_online"])
        self.size = min(self.num_offline + self.num_online, self.max_rows)
