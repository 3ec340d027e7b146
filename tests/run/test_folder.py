"""The run folder on its own (no training): what a rerun does in a folder, the lock, the files it owns."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from mfql.errors import CheckpointError, ConfigError, RunError
from mfql.run.checkpoint import load_state
from mfql.run.folder import RUN_KEY_FORMAT, RunFolder


def final_of(key: str, csvs: dict[str, str]) -> dict:
    return {"meta": {"run_key": key, "task": "t", "seed": 0}, "config": {"task": "t", "seed": 0},
            "csv": csvs, "actor": {"w": torch.zeros(2)}}


def finished(path, key="k1", key_format=RUN_KEY_FORMAT) -> RunFolder:
    folder = RunFolder(path)
    folder.lock()
    assert folder.claim(key, overwrite=False) == "fresh"
    meta = {"run_key": key, "task": "t", "seed": 0, **({"run_key_format": key_format} if key_format > 1 else {})}
    folder.write_start("task: t\nseed: 0\n", meta)
    (folder.path / "train.csv").write_text("step,loss\n0,1.0\n")
    (folder.path / "eval.csv").write_text("step,success\n0,0.0\n")
    folder.write_final(final_of(key, folder.csvs()), meta)
    folder.release()
    return folder


def test_a_new_folder_is_fresh_and_a_refused_one_is_left_as_it_was(tmp_path):
    finished(tmp_path / "run", "k1")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    other = RunFolder(tmp_path / "run")
    other.lock()
    with pytest.raises(ConfigError, match="holds another run task=t seed=0 .*this run's is k2"):
        other.claim("k2", overwrite=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before


def test_a_folder_keyed_by_an_earlier_mfql_is_refused_with_that_reason_and_replaced_only_on_request(tmp_path):
    finished(tmp_path / "run", "old", key_format=1)  # meta.json without run_key_format: before per-method options
    folder = RunFolder(tmp_path / "run")
    folder.lock()
    with pytest.raises(ConfigError, match=r"keyed by an earlier mfql \(run key format 1, now 2: each method has its "
                                          r"own options since 2026-12-06, CHANGELOG.md\); pass overwrite=true"):
        folder.claim("new", overwrite=False)
    folder.lock()  # a refusal released the folder
    assert folder.claim("new", overwrite=True) == "fresh"
    assert not (tmp_path / "run" / "final.pt").exists()


def test_a_finished_run_is_never_retrained_and_its_deleted_files_come_back(tmp_path):
    finished(tmp_path / "run")
    csv = (tmp_path / "run" / "eval.csv").read_bytes()
    for name in ("eval.csv", "config.yaml"):
        (tmp_path / "run" / name).unlink()
    folder = RunFolder(tmp_path / "run")
    folder.lock()
    assert folder.claim("k1", overwrite=False) == "finished"
    assert (tmp_path / "run" / "eval.csv").read_bytes() == csv
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_a_final_checkpoints_records_are_read_without_torch_as_torch_reads_them(tmp_path):
    """What `python -m mfql.restore` writes back comes from an unpickler that never imports torch."""
    path = tmp_path / "final.pt"
    torch.save({**final_of("k1", {"eval.csv": "step,success\n0,0.5\n"}), "count": torch.tensor(3),
                "mask": torch.ones(2, dtype=torch.bool), "critic": {"w": torch.ones(2, 3, dtype=torch.float64)}}, path)
    script = ("import json, sys; from mfql.run.records import read_final_records; "
              f"records = read_final_records({str(path)!r}); assert 'torch' not in sys.modules; "
              "print(json.dumps(records))")
    records = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                        check=True).stdout)
    final = torch.load(path, weights_only=True)
    assert records == {key: final[key] for key in ("config", "meta", "csv")}


def test_overwrite_replaces_another_run_and_a_damaged_final_is_refused(tmp_path):
    finished(tmp_path / "run", "k1")
    folder = RunFolder(tmp_path / "run")
    folder.lock()
    assert folder.claim("k2", overwrite=True) == "fresh"
    assert not any((tmp_path / "run" / n).exists() for n in ("final.pt", "meta.json", "eval.csv"))
    folder.release()

    finished(tmp_path / "damaged", "k1")
    final = tmp_path / "damaged" / "final.pt"
    final.write_bytes(final.read_bytes()[:-3] + b"xyz")
    again = RunFolder(tmp_path / "damaged")
    again.lock()
    with pytest.raises(CheckpointError, match="SHA-256 recorded"):
        again.claim("k1", overwrite=False)


def test_the_folder_is_held_by_one_process_and_abandoning_a_new_one_leaves_nothing(tmp_path):
    first = RunFolder(tmp_path / "run")
    first.lock()
    first.claim("k1", overwrite=False)
    second = RunFolder(tmp_path / "run")
    with pytest.raises(RunError, match="in use by another mfql.train process"):
        second.lock()
    first.release()
    second.lock()  # free again once released
    second.release()

    fresh = RunFolder(tmp_path / "never")
    fresh.lock()
    fresh.abandon()
    assert not (tmp_path / "never").exists()


def test_resume_states_rotate_and_the_final_write_removes_them(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.lock()
    folder.claim("k1", overwrite=False)
    for step in (10, 20):
        folder.write_resume({"step": step, "run_key": "k1", "config": {}})
    assert sorted(folder.saved_states()) == [10, 20]
    assert load_state(folder.resume_path)["step"] == 20 and load_state(folder.prev_path)["step"] == 10
    (folder.path / ".final.pt.123.tmp").write_bytes(b"half")  # a write killed midway
    folder.release()

    rerun = RunFolder(tmp_path / "run")
    rerun.lock()
    assert rerun.claim("k1", overwrite=False) == "resume"
    assert not (rerun.path / ".final.pt.123.tmp").exists()
    rerun.write_final(final_of("k1", {}), {"run_key": "k1"})
    assert not (rerun.path / "_resume").exists()
    meta = json.loads((rerun.path / "meta.json").read_text())
    assert len(meta["final_sha256"]) == 64


def test_rows_of_an_attempt_that_never_checkpointed_are_dropped(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.lock()
    folder.claim("k1", overwrite=False)
    folder.write_start("task: t\n", {"run_key": "k1", "task": "t", "seed": 0})
    (folder.path / "train.csv").write_text("step,loss\n0,1.0\n")
    folder.release()
    again = RunFolder(tmp_path / "run")
    again.lock()
    assert again.claim("k1", overwrite=False) == "fresh"
    assert not (again.path / "train.csv").exists()
