"""The benchmark's own machinery (its figures are measured by running it, never asserted in tests)."""

import torch

from mfql.bench import isolated


def child_state() -> dict:
    """What a benchmark child process computes with: its threads and whether it flushes denormals."""
    return {"threads": torch.get_num_threads(),
            "denormal_kept": int((torch.full((1 << 16,), 1e-40) * 1.0).count_nonzero())}


def test_each_model_is_timed_in_a_fresh_process_set_up_like_the_parent():
    assert isolated((1, True), child_state) == {"threads": 1, "denormal_kept": 0}
    assert isolated((2, False), child_state) == {"threads": 2, "denormal_kept": 1 << 16}
