"""Checkpoints and resume states on their own: what is refused, and that the RNG state restores exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mfql.errors import CheckpointError
from mfql.run.checkpoint import (
    load_final,
    load_state,
    rng_state,
    save_state,
    save_torch,
    seed_everything,
    set_rng_state,
)


def draws():
    return random.random(), float(np.random.rand()), np.random.randn(3).tolist(), torch.rand(3).tolist()


def test_the_rng_state_restores_every_generator_exactly():
    seed_everything(3)
    draws()
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    state = rng_state()
    expected = draws()
    seed_everything(99)
    set_rng_state(state)
    assert draws() == expected


def test_a_resume_state_carries_the_rng_state_through_its_file(tmp_path):
    seed_everything(5)
    save_state(tmp_path / "state.pt", {"step": 3, "rng": rng_state()})
    expected = draws()
    seed_everything(0)
    set_rng_state(load_state(tmp_path / "state.pt")["rng"])
    assert draws() == expected


def test_files_that_are_not_resume_states_or_checkpoints_are_refused_in_one_line(tmp_path):
    torch.save({"step": 1}, tmp_path / "plain.pt")  # a torch file without the checksum header
    with pytest.raises(CheckpointError, match="not an mfql resume state"):
        load_state(tmp_path / "plain.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable mfql checkpoint") as info:
        load_final(tmp_path / "text.pt")
    assert "\n" not in str(info.value)


def test_a_final_checkpoint_with_code_in_it_is_never_unpickled(tmp_path):
    class Planted:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"payload": Planted()}, tmp_path / "final.pt")
    with pytest.raises(CheckpointError):
        load_final(tmp_path / "final.pt")
    save_torch(tmp_path / "ok.pt", {"w": torch.ones(2)})
    assert torch.equal(load_final(tmp_path / "ok.pt")["w"], torch.ones(2))
