import json

import numpy as np
import pytest

from mfql.toy import CENTRES, sample_mixture, wasserstein2
from tests.conftest import run_module


def test_mixture_and_wasserstein():
    rng = np.random.default_rng(0)
    x = sample_mixture(4000, rng)
    nearest = np.linalg.norm(x[:, None] - CENTRES[None], axis=-1).argmin(1)
    assert np.bincount(nearest, minlength=16).min() > 150  # all 16 modes, about equally weighted
    assert wasserstein2(x[:500], x[:500]) == 0.0
    np.testing.assert_allclose(wasserstein2(x[:500], x[:500] + [0.3, 0.4]), 0.5, rtol=1e-9)


@pytest.mark.slow
def test_toy_fit_beats_a_single_gaussian_by_a_wide_margin(tmp_path):
    run_module("mfql.toy", f"out_dir={tmp_path}", "steps=2500", "batch_size=256", "samples=1000")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (1000, 2) and (tmp_path / "toy.png").stat().st_size > 10_000
    floor, single, fit = metrics["w2_data_vs_data"], metrics["w2_single_gaussian"], metrics["w2"]
    # the excess over sampling noise is under a third of a single Gaussian's
    assert fit - floor < (single - floor) / 3, metrics
    # and the samples cover the modes: most of the 16 centres have samples nearby
    near = np.linalg.norm(samples[:, None] - CENTRES[None], axis=-1).min(0) < 0.1
    assert near.sum() >= 14
