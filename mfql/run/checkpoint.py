"""The final checkpoint and the rolling resume state (with every RNG state).

Everything we load goes through ``torch.load(..., weights_only=True)``: checkpoints hold only tensors and
plain containers (the NumPy RNG state is stored as a tensor). The resume state also carries a SHA-256 of its
payload, checked before anything is unpickled, so a damaged or planted file is refused, never executed.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

import numpy as np
import torch

from mfql.errors import CheckpointError
from mfql.files import atomic_write, file_sha256

STATE_MAGIC = b"MFQL-STATE-1 sha256="


def save_torch(path: str | Path, obj) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_state(path: str | Path, obj) -> None:
    """The resume state: one file, a header line with the payload's SHA-256, then ``torch.save``'s bytes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    header = STATE_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(header + payload)
            handle.flush()
            os.fsync(handle.fileno())

    atomic_write(path, write, size=len(header) + len(payload))


def load_state(path: str | Path) -> dict:
    """Read a resume state written by :func:`save_state`; refuse it unless its checksum matches."""
    path = Path(path)
    raw = path.read_bytes()
    head, _, payload = raw.partition(b"\n")
    if not head.startswith(STATE_MAGIC):
        raise CheckpointError(f"{path} is not an mfql resume state (no checksum header); "
                              f"delete it to start the run over")
    if hashlib.sha256(payload).hexdigest().encode() != head[len(STATE_MAGIC):]:
        raise CheckpointError(f"{path} is damaged (checksum mismatch: truncated or modified); "
                              f"delete it to start the run over")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # a valid checksum over bytes torch cannot read: written by another version
        raise CheckpointError(f"{path} cannot be read ({type(exc).__name__}); delete it to start over") from None


def load_final(path: str | Path, expected_sha256: str | None = None) -> dict:
    """Load a ``final.pt`` (plain tensors and containers only: safe with ``weights_only=True``)."""
    path = Path(path)
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise CheckpointError(f"{path} does not match the SHA-256 recorded in its run's meta.json "
                              f"(modified or damaged); retrain the run")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable mfql checkpoint ({reason}); retrain the run") from None


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
