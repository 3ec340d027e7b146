"""python -m mfql.parity against the official code in ../shared/official (or $MFQL_OFFICIAL): it passes on
mfql's update, and fails, naming the quantity, when one detail of that update is changed (its teeth). Skipped,
with the reason, where the official code or the parity extra (JAX) is missing."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from mfql.agents.fql import FQL
from mfql.config import compose
from tests.conftest import ROOT, TEST_METHODS, run_module

TEST_ENV = {**os.environ, **TEST_METHODS}  # the test-only method bc (tests/methods) is registered

OFFICIAL = Path(os.environ.get("MFQL_OFFICIAL", ROOT.parent / "shared" / "official"))
FQL_CODE = OFFICIAL / "fql-719d044"
MFQL_CODE = OFFICIAL / "MeanFlowQL-3fab100"
pytestmark = [
    pytest.mark.slow,  # JAX and the official agents, eagerly: about 4 minutes
    pytest.mark.skipif(not (FQL_CODE.is_dir() and MFQL_CODE.is_dir()),
                       reason=f"no official code at {OFFICIAL} (set MFQL_OFFICIAL)"),
    pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                       reason='the parity extra is not installed (pip install -e ".[parity]")'),
]


def parity(*args: str, method: str = "fql"):
    """The check in this process; FQL's and ReBRAC's at the small model unless told (the paper model is the
    subprocess test's and MeanFlow-QL's: the teeth need no more than the small one)."""
    from mfql.parity.__main__ import run

    code = MFQL_CODE if method == "mfql" else FQL_CODE  # FQL's repository holds its ReBRAC too
    model = [] if method == "mfql" or any(a.startswith("model=") for a in args) else ["model=small"]
    return run(compose("parity", [f"method={method}", f"official={code}", *model, *args]))


def test_the_fql_update_matches_the_official_code(tmp_path):
    out = tmp_path / "parity.json"
    proc = run_module("mfql.parity", "method=fql", f"official={FQL_CODE}", f"out={out}", "updates=1")
    assert "PASS" in proc.stdout.splitlines()[-1]
    report = json.loads(out.read_text())
    assert report["passed"] and report["dtype"] == "float64" and report["official"] == "seohongpark/fql@719d044"
    assert {c["shape"] for c in report["checks"]} == {"cube", "antmaze"}
    assert set(report["groups"]) == {"outputs", "actions", "bellman", "losses", "gradients", "parameters", "targets"}
    assert max(c["max_rel"] for c in report["checks"]) < 1e-9
    names = {c["name"] for c in report["checks"]}
    # every parameter's gradient and value, and every logged loss
    assert {"actor.bc_flow.net.0.weight", "critic.net.0.kernel", "target_critic.net.6.bias"} <= names
    assert {"critic/loss", "actor/bc_loss", "actor/distill_loss", "actor/q_loss", "total_loss"} <= names


def test_the_fql_update_on_pixels_matches_the_official_code():
    # each network behind its own impala_small encoder; the BC flow's is the official actor_bc_flow_encoder
    cmp, report = parity("shapes=[pixels]", "updates=1", "batch_size=4")
    assert report["passed"]
    names = {c.name for c in cmp.checks if c.group == "gradients"}
    assert {"actor.bc_flow.encoder.stacks.0.conv_in.weight", "actor.onestep.encoder.mlp.0.weight",
            "critic.encoder.stacks.2.blocks.0.3.weight"} <= names


def test_float32_matches_within_its_tolerance():
    cmp, report = parity("dtype=float32", "shapes=[cube]", "updates=2")
    assert cmp.passed and report["tolerance"] == 1e-3
    assert max(c.max_rel for c in cmp.checks) > 1e-9  # float32 round-off, not float64's


def failing(cmp) -> set[tuple[str, str]]:
    return {(c.group, c.name.split(".")[0]) for c in cmp.failed()}


def test_the_ema_after_the_optimiser_step_fails_on_the_targets_only(monkeypatch):
    def update_then_ema(self, batch, draws, state=None, foreach=True):
        state = state if state is not None else self.state()
        grads, metrics, _ = self.gradients(batch, draws, state)
        self.adam_steps(state, {name: grads[name].values() for name in self.NETWORKS}, foreach)
        self.soft_update(state, foreach)  # official: before the step
        state["update_count"].add_(1)
        return metrics

    monkeypatch.setattr(FQL, "update_on_device", update_then_ema)
    cmp, report = parity("shapes=[cube]", "updates=2")
    assert not report["passed"]
    assert failing(cmp) >= {("targets", "target_critic")}
    assert {group for group, _ in failing(cmp)} <= {"targets", "outputs", "bellman", "losses", "gradients",
                                                    "parameters"}
    first = min(c.update for c in cmp.failed())
    assert {c.group for c in cmp.failed() if c.update == first} == {"targets"}


def test_another_target_rate_fails_on_the_targets_and_nothing_else(monkeypatch):
    soft_update = FQL.soft_update
    monkeypatch.setattr(FQL, "soft_update", lambda self, state=None, foreach=True, rate=None:
                        soft_update(self, state, foreach, rate=self.cfg.tau * 1.01))
    cmp, _ = parity("shapes=[cube]", "updates=2")  # the first update's EMA: the target is still the critic's copy
    # the target network's parameters, and what the final outputs compute from it only
    assert failing(cmp) == {("targets", "target_critic"), ("outputs", "target critic Q(s, a)"),
                            ("bellman", "Bellman target r + gamma m Q'(s', mu(s', z))")}


def test_reversed_flow_interpolation_fails_on_the_bc_loss_and_its_gradients(monkeypatch):
    bc_flow_loss = FQL.bc_flow_loss

    def reversed_time(self, batch, params, draws):
        return bc_flow_loss(self, batch, params, {**draws, "times": 1.0 - draws["times"]})

    monkeypatch.setattr(FQL, "bc_flow_loss", reversed_time)
    cmp, _ = parity("shapes=[cube]", "updates=1")
    names = {c.name for c in cmp.failed() if c.update == 1 and c.group in ("losses", "gradients")}
    assert {"actor/bc_loss", "actor/loss", "total_loss"} <= names
    assert any(n.startswith("actor.bc_flow.") for n in names)
    assert not any(n.startswith(("critic.", "actor.onestep.")) for n in names)  # the other losses still match
    assert torch.get_default_dtype() == torch.float32  # the check leaves torch's default as it found it


def test_another_commit_of_the_official_code_is_refused_in_one_line(tmp_path):
    copy = tmp_path / "fql"
    shutil.copytree(FQL_CODE, copy)
    with open(copy / "agents" / "fql.py", "a") as f:
        f.write("\n# edited\n")
    proc = run_module("mfql.parity", "method=fql", f"official={copy}", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: official={str(copy)!r}: agents/fql.py differs from seohongpark/fql at commit 719d044 "
        f"(check out that commit: git -C {copy} checkout 719d044)"]
    proc = run_module("mfql.parity", "method=bc", f"official={copy}", check=False, env=TEST_ENV)
    assert proc.returncode == 2 and "method='bc' has no parity check (valid: mfql, fql, rebrac)" in proc.stderr
    proc = run_module("mfql.parity", "method=mfql", f"official={MFQL_CODE}", "model=small", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: model='small' has no counterpart in mfql's official code (valid: paper)")
    proc = run_module("mfql.parity", "method=fql", f"official={FQL_CODE}", "parity=corrected", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: parity='corrected' is not checked for fql (valid: official)")
    proc = run_module("mfql.parity", "method=mfql", f"official={MFQL_CODE}", "parity=corrected", "dtype=float32",
                      check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "error: dtype='float32' with parity=corrected: its differences are checked in float64 only, where "
        "float32's tolerance cannot hide them (valid: float64)")


def test_the_rebrac_update_matches_the_official_code():
    # four updates: two of them full (the actor's loss and both targets' EMA, every second step)
    cmp, report = parity("shapes=[cube]", "updates=4", method="rebrac")
    assert report["passed"]
    assert {c.update for c in cmp.checks if c.name == "actor/bc_loss"} == {2, 4}
    assert {"target_actor.net.4.weight", "actor.net.0.weight"} <= {c.name for c in cmp.checks}


def test_the_rebrac_update_on_pixels_matches_the_official_code():
    # the second update is the first full one: the actor behind its encoder, both targets' EMA
    cmp, report = parity("shapes=[pixels]", "updates=2", "batch_size=4", method="rebrac")
    assert report["passed"]
    assert {"actor.encoder.stacks.0.conv_in.weight", "target_actor.net.net.4.weight"} <= {c.name for c in cmp.checks}


def test_the_meanflow_ql_update_on_pixels_matches_the_official_code():
    # the critic and the actor behind their own impala_small encoders; the actor's is the official
    # actor_bc_flow_encoder
    cmp, report = parity("shapes=[pixels]", "updates=1", "batch_size=4", method="mfql")
    assert report["passed"]
    assert {"actor.encoder.stacks.0.conv_in.weight", "actor.net.blocks.0.attn.qkv.weight",
            "critic.encoder.mlp.0.weight"} <= {c.name for c in cmp.checks if c.group == "gradients"}


@pytest.fixture(scope="module")
def meanflow_cube():
    """MeanFlow-QL's check on cube through the tool (4 updates, batch 4): (its comparison, its report, and the
    official updates it ran). The tests below compare other mfql agents with those same official updates
    (the tool's own ``official_updates`` gives them back for the same inputs) instead of running them again."""
    from mfql.parity import __main__ as tool

    recorded, official_updates = {}, tool.official_updates

    def recording(*args, **kwargs):
        recorded["official"] = official_updates(*args, **kwargs)
        return recorded["official"]

    tool.official_updates = recording
    try:
        cmp, report = parity("shapes=[cube]", "batch_size=4", method="mfql")
    finally:
        tool.official_updates = official_updates
    return cmp, report, recorded["official"]


def reuse(monkeypatch, meanflow_cube) -> None:
    """The tool's official updates for the same shape, batch and seed: the recorded ones, as many as asked."""
    from mfql.parity import __main__ as tool

    done, final_draws = meanflow_cube[2]

    def recorded(cfg, adapter, served, official, agent, shape, updates, jax, jnp):
        assert (shape, cfg.batch_size, cfg.seed) == ("cube", 4, 0) and updates <= len(done)
        # each run imports the official module afresh: the recorded agents' module draws from this run's server
        recorded_globals = type(done[0].before).critic_loss.__globals__
        monkeypatch.setitem(recorded_globals, "jax", type(official).critic_loss.__globals__["jax"])
        return done[:updates], final_draws

    monkeypatch.setattr(tool, "official_updates", recorded)


def test_the_meanflow_ql_update_matches_the_official_code(meanflow_cube):
    # four updates: the learning rate's warm-up, the alpha controller's, then its first adapting event
    cmp, report, _ = meanflow_cube
    assert report["passed"] and report["official"] == "HiccupRL/MeanFlowQL@3fab100" and report["updates"] == 4
    assert set(report["groups"]) == {"outputs", "actions", "bellman", "losses", "alpha", "gradients", "schedule",
                                     "parameters", "targets"}
    names = {c.name for c in cmp.checks}
    assert {"actor.blocks.2.attn.qkv.weight", "actor.pos_embed", "critic.net.0.kernel", "actor/bc_loss",
            "best-of-K action (evaluation)", "MeanFlow-loss history"} <= names
    lrs = [c for c in cmp.checks if c.group == "schedule"]
    assert [c.update for c in lrs] == [1, 2, 3, 4] and all(c.tol == pytest.approx(2.0**-23) for c in lrs)
    # the fourth update adapts alpha (x1.2: the official average reads empty slots), on both sides
    weights = [c for c in cmp.checks if c.name == "alpha (carried)"]
    assert [c.update for c in weights] == [1, 2, 3, 4] and weights[-1].max_abs < 1e-9


def test_a_reversed_meanflow_interpolation_fails_on_the_bc_loss_and_the_actor(monkeypatch, meanflow_cube):
    from mfql.agents.meanflow import MeanFlowQL

    mfi = MeanFlowQL.mfi_output_and_target

    def reversed_path(self, obs_n, actions, times, noises, actor_params=None):  # a_t = t a + (1 - t) e
        return mfi(self, obs_n, noises, times, actions, actor_params)

    monkeypatch.setattr(MeanFlowQL, "mfi_output_and_target", reversed_path)
    reuse(monkeypatch, meanflow_cube)
    cmp, _ = parity("shapes=[cube]", "updates=1", "batch_size=4", method="mfql")
    names = {c.name for c in cmp.failed() if c.group in ("losses", "gradients")}
    assert {"actor/bc_loss", "actor/loss", "total_loss"} <= names and any(n.startswith("actor.") for n in names)
    assert not any(n.startswith("critic") for n in names)


def test_each_corrected_difference_acts_exactly_where_the_docs_say(capsys, monkeypatch, meanflow_cube):
    from mfql.parity.__main__ import print_corrections

    reuse(monkeypatch, meanflow_cube)
    _, report = parity("shapes=[cube]", "parity=corrected", "batch_size=4", method="mfql")
    assert report["passed"] and len(report["corrections"]) == 6
    verdicts = {v["correction"]: v for v in report["corrections"]}
    # the EMA alone changes the targets at the first update; the α corrections first act at the first
    # adapting event (the fourth update), on the BC weight and what it weighs
    assert verdicts["target EMA"]["first"] == 1
    assert {d.split(" ")[0] for d in verdicts["target EMA"]["differs"]} == {"targets"}
    assert verdicts["α history average"]["first"] == 4
    assert "alpha alpha (this update's BC weight)" in verdicts["α history average"]["differs"]
    assert verdicts["all of them"]["passed"]
    print_corrections(report)
    printed = capsys.readouterr().out
    assert "differs first at update 1, in: targets target_critic.* (18 tensors)" in printed
    assert "not part of an update: training loop" in printed
