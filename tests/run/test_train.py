"""python -m mfql.train / mfql.evaluate end to end, on regenerated OGBench data and a Minari dataset."""

import json
import mmap
import re

import numpy as np
import pytest
import torch

from mfql.run.profiling import MemoryLedger
from tests.conftest import TASK, read_csv, run_module
from tests.conftest import train_args as quick_args


def train_args(out, data_dir, *extra):
    return quick_args(out, data_dir, "seed=1", *extra)


@pytest.mark.slow
def test_offline_run_writes_every_output(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    run_module("mfql.train", *train_args(out, ogbench_dir.parent, "offline_steps=30", "eval_interval=15"))
    assert {p.name for p in out.iterdir()} == {"config.yaml", "meta.json", "train.csv", "eval.csv", "final.pt", ".lock"}
    evals = read_csv(out / "eval.csv")
    assert [int(r["step"]) for r in evals] == [0, 15, 30]  # official loop: steps 0..N
    assert list(evals[0])[:2] == ["step", "success"] and evals[0]["episodes"] == "1"
    train = read_csv(out / "train.csv")
    assert list(train[0])[0] == "step" and [int(r["step"]) for r in train] == [0, 10, 20, 30]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["versions"]["torch"] and meta["versions"]["ogbench"] == "1.2.2"
    assert len(meta["dataset"]["sha256"]) == 64 and meta["dataset"]["transitions"] == 400
    assert "offline_steps: 30" in (out / "config.yaml").read_text()
    final = torch.load(out / "final.pt", weights_only=True)
    assert {"actor", "critic", "target_critic", "config"} <= set(final)
    assert final["config"]["task"] == TASK and final["config"]["agent"]["alpha"] == 120


@pytest.mark.slow
def test_corrected_parity_loops_from_step_one(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    # and its 3 evaluation episodes are played 2 at a time: as many cube environments as fit in 400 MB
    proc = run_module("mfql.train", *train_args(out, ogbench_dir.parent, "offline_steps=20", "eval_interval=10",
                                                "parity=corrected", "eval_episodes=3", "env_memory_mb=400"))
    evals = read_csv(out / "eval.csv")
    assert [int(r["step"]) for r in evals] == [10, 20] and evals[0]["episodes"] == "3"
    assert "parity: corrected" in (out / "config.yaml").read_text()
    assert "evaluation: 2 of 3 episodes at once (env_memory_mb=400, 180 MB per manipulation environment)" in proc.stderr
    # and the log ends with where its memory went, stage by stage: two cube environments hold over 100 MB
    ledger = dict(re.findall(r"(\w[\w ]*?) \+?(-?\d+)(?:,|;)", proc.stderr.split("memory (resident MB): ")[1]))
    assert list(ledger) == ["process", "dataset", "agents and buffers", "first update", "environments", "the rest"]
    assert int(ledger["environments"]) > 100


def resident_pages(mb: int) -> mmap.mmap:
    """``mb`` MB of fresh pages, written: resident (a heap allocation could reuse pages already resident)."""
    pages = mmap.mmap(-1, mb * 2**20)
    np.frombuffer(pages, dtype=np.uint8)[:] = 1
    return pages


def test_memory_ledger_gives_each_stage_its_growth():
    ledger = MemoryLedger()
    held = [resident_pages(50)]
    ledger.mark("array")
    held.append(resident_pages(25))
    ledger.mark("more")
    ledger.mark("array")  # a stage marked again adds to its share
    assert 45 < ledger.shares["array"] < 60 and 20 < ledger.shares["more"] < 35
    line = ledger.summary()
    assert line.startswith("memory (resident MB): process ") and ", array +" in line and "; peak " in line
    assert float(line.rsplit("peak ", 1)[1]) >= sum(ledger.shares.values()) - 1
    del held


@pytest.mark.slow
def test_evaluate_cli_is_seeded(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    run_module("mfql.train", *train_args(out, ogbench_dir.parent, "offline_steps=5", "eval_episodes=0"))
    first = run_module("mfql.evaluate", f"checkpoint={out / 'final.pt'}", "episodes=3", "seed=4")
    again = run_module("mfql.evaluate", f"checkpoint={out / 'final.pt'}", "episodes=3", "seed=4")
    result = json.loads(first.stdout)
    assert first.stdout == again.stdout
    assert result["metric"] == "success" and len(result["per_episode"]) == 3
    assert 0.0 <= result["success"] <= 1.0


@pytest.mark.slow
def test_d4rl_task_trains_on_minari_data_offline_to_online(tmp_path, minari_dir):
    out = tmp_path / "run"
    run_module("mfql.train", "task=antmaze-umaze-v2", f"out_dir={out}", f"data_dir={minari_dir}", "model=small",
               "offline_steps=10", "online_steps=12", "eval_interval=11", "eval_episodes=1", "env_max_steps=6",
               "log_interval=11", "device=cpu")
    evals = read_csv(out / "eval.csv")
    assert [int(r["step"]) for r in evals] == [0, 11, 22] and "normalized_return" in evals[0]
    cfg = (out / "config.yaml").read_text()
    assert "alpha: 100" in cfg  # antmaze-umaze's offline-to-online value (= Table 7)
    assert float(read_csv(out / "train.csv")[-1]["online/episodes"]) == 2


@pytest.mark.slow
def test_missing_dataset_is_a_clear_error(tmp_path):
    proc = run_module("mfql.train", f"task={TASK}", f"out_dir={tmp_path / 'r'}", f"data_dir={tmp_path}",
                      check=False)
    assert proc.returncode == 2
    assert "cube-single-play-v0" in proc.stderr and "mfql.datagen" in proc.stderr and "mfql.fetch" in proc.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_cfg_prints_the_resolved_config_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    proc = run_module("mfql.train", f"task={TASK}", f"out_dir={out}", "agent.alpha=7", "model=small", "--cfg")
    assert "alpha: 7" in proc.stdout and "actor: mlp" in proc.stdout and "offline_steps: 1000000" in proc.stdout
    assert not out.exists()
    helptext = run_module("mfql.train", "--help").stdout
    assert "python -m mfql.train task=" in helptext and "eval_episodes: 50" in helptext


@pytest.mark.slow
def test_mid_episode_resume_rebuilds_the_environment_by_replaying_the_episode(tmp_path, ogbench_dir, caplog):
    from mfql.config import train_config
    from mfql.data.datasets import flatten_obs
    from mfql.run.trainer import Run

    cfg = train_config([f"task={TASK}", f"out_dir={tmp_path}", f"data_dir={ogbench_dir.parent}", "model=small",
                        "offline_steps=0", "online_steps=20", "env_max_steps=50", "eval_episodes=0", "device=cpu"])
    run = Run(cfg, "test", "no-data-hash", torch.device("cpu"))
    for _ in range(7):
        run.online.step()
    saved = run.online.in_progress()
    assert saved["actions"].shape == (7, run.action_dim)
    fresh = Run(cfg, "test", "no-data-hash", torch.device("cpu"))
    fresh.online.replay(saved)
    # The observation the agent sees (float32) is the same. MuJoCo's float64 physics is not bit-identical
    # between two environment instances fed the same actions (measured: 1e-16 in qpos, also between two
    # replays), the same round-off an uninterrupted run's next episode has against a fresh environment.
    assert np.array_equal(fresh.online.obs, run.online.obs)
    env, fresh_env = run.pools.online.env(0), fresh.pools.online.env(0)
    np.testing.assert_allclose(fresh_env.unwrapped.data.qpos, env.unwrapped.data.qpos, rtol=0, atol=1e-12)
    assert fresh.online.episode_return == run.online.episode_return and len(fresh.online.episode_actions) == 7
    action = np.full(run.action_dim, 0.3, np.float32)  # both continue the same way
    assert np.array_equal(flatten_obs(fresh_env.step(action)[0]), flatten_obs(env.step(action)[0]))

    saved["observation"] += 1.0  # a replay that does not reproduce the saved state is reported
    with caplog.at_level("WARNING", logger="mfql.train"):
        Run(cfg, "test", "no-data-hash", torch.device("cpu")).online.replay(saved)
    assert "did not reproduce its saved observation" in caplog.text
