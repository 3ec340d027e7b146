"""Nothing lost, nothing executed: planted checkpoints, owned and locked run folders, guarded numbers,
permissions, progress off a terminal, thread allotment and the dataset mirror."""

from __future__ import annotations

import csv
import http.server
import json
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from mfql.config import train_config
from mfql.run.checkpoint import STATE_MAGIC, load_state, save_state
from mfql.run.devices import cpu_allotment
from mfql.run.folder import run_key
from tests.conftest import ROOT, TASK, run_module, train_args
from tests.conftest import train as quick_train

TINY = ["seed=0", "env_max_steps=5", "log_interval=5", "eval_interval=5"]  # over conftest's QUICK


def train(out, data, *extra, check=True, env=None):
    return quick_train(out, data, *TINY, "offline_steps=5", *extra, check=check, env=env)


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


class Planted:
    """A pickle that runs code when unpickled: what a planted checkpoint would carry."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ------------------------------------------------------------------------------------------ code execution
@pytest.mark.parametrize("with_valid_checksum", [False, True])
def test_planted_resume_state_is_refused_never_executed(tmp_path, ogbench_dir, with_valid_checksum):
    marker = tmp_path / "EXECUTED"
    out = tmp_path / "run"
    (out / "_resume").mkdir(parents=True)
    payload = pickle.dumps({"step": 3, "run_key": "x", "evil": Planted(marker)})
    if with_valid_checksum:  # an attacker can compute the checksum too: weights_only must still refuse it
        import hashlib

        payload = STATE_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    (out / "_resume" / "state.pt").write_bytes(payload)
    proc = train(out, ogbench_dir.parent, check=False)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1, proc.stderr[-2000:]
    assert "state.pt" in error_lines(proc)[0] and "delete it to start" in error_lines(proc)[0]
    assert not marker.exists(), "unpickling the planted state ran code"


def test_planted_final_checkpoint_is_refused_by_evaluate(tmp_path):
    marker = tmp_path / "EXECUTED"
    path = tmp_path / "final.pt"
    torch.save({"evil": Planted(marker)}, path)
    proc = run_module("mfql.evaluate", f"checkpoint={path}", check=False)
    assert proc.returncode == 2 and "is not a readable mfql checkpoint" in proc.stderr
    assert not marker.exists()


def test_planted_final_checkpoint_is_refused_by_the_restore_without_torch(tmp_path):
    """mfql.restore's reader leaves torch out; a global it does not know goes to torch's weights_only load."""
    marker = tmp_path / "EXECUTED"
    torch.save({"config": {}, "meta": {}, "csv": {}, "evil": Planted(marker)}, tmp_path / "final.pt")
    proc = run_module("mfql.restore", f"run_dir={tmp_path}", check=False)
    assert proc.returncode == 2 and "is not a readable mfql checkpoint" in error_lines(proc)[0]
    assert not marker.exists() and not (tmp_path / "eval.csv").exists()


def test_resume_state_round_trips_and_detects_any_flipped_byte(tmp_path):
    path = tmp_path / "state.pt"
    save_state(path, {"step": 7, "w": torch.arange(5.0), "nested": {"a": [1, 2.5, "x"]}})
    assert load_state(path)["step"] == 7
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged"):
        load_state(path)


# ------------------------------------------------------------------------------------------ run folders
@pytest.mark.slow
def test_foreign_run_is_never_overwritten_unless_asked(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    train(out, ogbench_dir.parent)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    other = train(out, ogbench_dir.parent, "seed=3", check=False)
    assert other.returncode == 2 and "holds another run" in error_lines(other)[0]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    replaced = train(out, ogbench_dir.parent, "seed=3", "overwrite=true")
    assert "replacing" in replaced.stderr
    assert json.loads((out / "meta.json").read_text())["seed"] == 3


@pytest.mark.slow
def test_finished_run_rerun_is_a_no_op_whatever_the_path_spelling(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    train(out, ogbench_dir.parent)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"}
    # The same run, with the data folder spelled differently and from another working directory.
    spelled = f"{ogbench_dir.parent}/./"
    again = train(out, spelled, "threads=1")
    assert "already holds this finished run" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != ".lock"} == stamps
    a = train_config([f"task={TASK}", "out_dir=a", "data_dir=data", "device=cpu"])
    b = train_config([f"task={TASK}", "out_dir=./b/", "data_dir=./data", "device=auto", "tracker=none"])
    assert run_key(a, "sha") == run_key(b, "sha") != run_key(a, "other-data")
    c = train_config([f"task={TASK}", "out_dir=a", "data_dir=data", "agent.alpha=3"])
    assert run_key(c, "sha") != run_key(a, "sha")


@pytest.mark.slow
def test_deleted_logs_come_back_from_final_pt_without_training(tmp_path, ogbench_dir):
    """By the training command run again, and by `python -m mfql.restore` (the pipeline's run_files job)."""
    out = tmp_path / "run"
    train(out, ogbench_dir.parent)
    saved = {n: (out / n).read_text() for n in ("eval.csv", "train.csv", "config.yaml", "meta.json")}
    stamp = (out / "final.pt").stat().st_mtime_ns
    for name in saved:
        (out / name).unlink()
    again = train(out, ogbench_dir.parent)
    assert "already holds this finished run" in again.stderr and "eval step" not in again.stderr
    assert {n: (out / n).read_text() for n in saved} == saved
    for name in ("eval.csv", "config.yaml"):
        (out / name).unlink()
    restored = run_module("mfql.restore", f"run_dir={out}")
    assert "restored from" in restored.stderr and "eval.csv, config.yaml" in restored.stderr
    assert {n: (out / n).read_text() for n in saved} == saved
    assert (out / "final.pt").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_a_second_process_is_locked_out(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "mfql.train",
            *train_args(out, ogbench_dir.parent, *TINY, "offline_steps=100000", "eval_interval=100000")]
    first = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "train.csv").exists():  # the first one is training
            time.sleep(0.2)
        assert (out / "train.csv").exists(), "the first run did not start"
        second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 3
        assert error_lines(second) == [f"error: run folder {out} is in use by another mfql.train process "
                                       f"(pid {first.pid}); wait for it to end or choose another out_dir"]
    finally:
        first.kill()
        first.wait()


# ------------------------------------------------------------------------------------------ numbers
@pytest.mark.slow
def test_eval_episodes_zero_writes_a_valid_empty_eval_csv(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    train(out, ogbench_dir.parent, "eval_episodes=0")
    assert (out / "eval.csv").read_text() == "step,success,success_std,episodes\n"


def test_divergence_stops_the_run_and_keeps_the_last_good_state(tmp_path, ogbench_dir):
    """A critic weight turns NaN inside the update of step 7 (as an overflow would): the run stops with one
    line naming step 7, keeps the resume state of step 6, and writes no final.pt."""
    from mfql.errors import RunError
    from mfql.run.loop import train
    from mfql.run.trainer import Run

    out = tmp_path / "run"
    cfg = train_config(train_args(out, ogbench_dir.parent, *TINY, "offline_steps=50", "checkpoint_interval=1"))
    run = Run(cfg, "key", "data", torch.device("cpu"))
    update = run.agent.update

    def poisoned(batch, step, *args, **kwargs):
        if step == 7:
            with torch.no_grad():
                next(run.agent.critic.parameters()).view(-1)[0] = float("nan")
        return update(batch, step, *args, **kwargs)

    run.agent.update = poisoned
    out.mkdir()
    with pytest.raises(RunError) as info:
        train([run], ["fresh"], packed=False)
    message = str(info.value)
    assert message.startswith("training diverged: non-finite loss at step 7 ")
    assert f"last good resume state (step 6) is kept in {out / '_resume' / 'state.pt'}" in message
    state = load_state(out / "_resume" / "state.pt")
    assert state["step"] == 6
    assert all(torch.isfinite(w).all() for w in state["agent"]["critic"].values())
    assert not (out / "final.pt").exists()


# ------------------------------------------------------------------------------------------ usability
@pytest.mark.slow
def test_files_respect_the_umask_and_progress_shows_off_a_terminal(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    env = {**os.environ, "MFQL_PROGRESS_SECONDS": "0", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mfql.train", *train_args(out, ogbench_dir.parent, *TINY, "offline_steps=5")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, preexec_fn=lambda: os.umask(0o002))
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("final.pt", "meta.json", "config.yaml"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o664, name  # group-readable and -writable
    assert "train 6/6 (100%)" in proc.stderr and "ETA" in proc.stderr  # stderr is a pipe here, not a TTY
    assert json.loads((out / "meta.json").read_text())["threads"] == 1
    evaluation = subprocess.run([sys.executable, "-m", "mfql.evaluate", f"checkpoint={out / 'final.pt'}",
                                 "episodes=2"], cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert "evaluate 2/2 (100%)" in evaluation.stderr


def test_one_data_folder_for_every_command_and_the_pipeline():
    import yaml

    from mfql.config import compose

    pipeline = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["data_dir"]
    assert compose("train", [f"task={TASK}", "out_dir=x"]).data_dir == pipeline == "resources"
    assert compose("fetch", ["dataset=x"]).data_dir == pipeline


def test_thread_allotment_follows_the_job(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert cpu_allotment() == 3
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert cpu_allotment() == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert cpu_allotment() == len(os.sched_getaffinity(0))


# ------------------------------------------------------------------------------------------ download mirror
class Server:
    """A local HTTP server: /down answers 503; /mirror and /liar serve files with a published SHA-256."""

    def __init__(self, files: dict[str, bytes]):
        import hashlib

        sums = {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                kind, _, name = self.path.strip("/").partition("/")
                if kind == "down" or name not in files:
                    self.send_error(503 if kind == "down" else 404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(files[name])))
                digest = sums[name] if kind == "mirror" else "0" * 64
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.end_headers()
                self.wfile.write(files[name])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def test_download_falls_back_to_the_mirror_and_verifies_its_checksums(tmp_path, ogbench_dir):
    import ogbench.utils

    from mfql.config import compose

    assert list(compose("fetch", ["dataset=x"]).ogbench_sources)[0] == ogbench.utils.DATASET_URL
    files = {n: (ogbench_dir / n).read_bytes() for n in ("cube-single-play-v0.npz", "cube-single-play-v0-val.npz")}
    server = Server(files)
    try:
        good = run_module("mfql.fetch", "dataset=cube-single-play-v0", f"data_dir={tmp_path / 'good'}",
                          f"ogbench_sources=[{server.url}/down,{server.url}/mirror]")
        assert "source failed" in good.stderr and f"downloaded from {server.url}/mirror" in good.stderr
        assert "SHA-256 verified" in good.stderr
        for name, body in files.items():
            assert (tmp_path / "good" / "ogbench" / name).read_bytes() == body
        assert (tmp_path / "good" / "checksums" / "cube-single-play-v0.json").is_file()

        bad = run_module("mfql.fetch", "dataset=cube-single-play-v0", f"data_dir={tmp_path / 'bad'}",
                         f"ogbench_sources=[{server.url}/down,{server.url}/liar]", check=False)
        assert bad.returncode == 2 and len(error_lines(bad)) == 1
        assert "does not match the published" in error_lines(bad)[0] and "mfql.datagen" in error_lines(bad)[0]
        assert not list((tmp_path / "bad" / "ogbench").iterdir())  # nothing kept, no temporary left
    finally:
        server.close()


# ------------------------------------------------------------------------------------------ aggregation
def fake_run(root, setting, task, seed, *, cfg_task=None, eval_task=None, offline_steps=100, method="mfql",
             extra=(), eval_steps=(0, 50, 100)):
    folder = root / "results" / setting / "mfql" / task / f"seed{seed}"
    folder.mkdir(parents=True)
    cfg = train_config([f"task={cfg_task or task}", f"seed={seed}", "out_dir=.", "model=small",
                        f"offline_steps={offline_steps}", f"method={method}", "eval_interval=50", *extra])
    from omegaconf import OmegaConf

    (folder / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    meta = {"task": cfg.task, "seed": seed, "run_key": f"key-{cfg.task}-{seed}", "final_sha256": "f" * 64}
    (folder / "meta.json").write_text(json.dumps(meta))
    with open(folder / "eval.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "success", "success_std", "episodes"])
        for step in eval_steps:
            writer.writerow([step, 0.5, 0.1, 2])
    final_eval = {"task": eval_task or cfg.task, "run_key": meta["run_key"] if not eval_task else "other",
                  "checkpoint_sha256": "f" * 64, "success": 0.5}
    (folder / "final_eval.json").write_text(json.dumps(final_eval))
    return {"setting": setting, "variant": "mfql", "task": task, "seed": seed, "dir": str(folder),
            "args": {"offline_steps": 100, "method": "mfql", "eval_interval": 50}, "model": "small"}


def test_tables_take_exactly_the_planned_runs_and_refuse_mismatched_files(tmp_path):
    from mfql.errors import ResultError
    from mfql.report.results import collect

    planned = [fake_run(tmp_path, "offline", TASK, s) for s in (0, 1)]
    fake_run(tmp_path, "offline", TASK, 7)  # a stray folder the suite does not plan
    _, scores = collect(planned, "regenerate")
    assert sorted(scores.seed) == [0, 1]

    other = "cube-single-play-singletask-task2-v0"
    cases = {
        "config.yaml is of task": fake_run(tmp_path / "a", "offline", TASK, 0, cfg_task=other),
        "final_eval.json evaluated a checkpoint of task": fake_run(tmp_path / "b", "offline", TASK, 0, eval_task=other),
        "config.yaml has offline_steps=200": fake_run(tmp_path / "c", "offline", TASK, 0, offline_steps=200),
        "config.yaml has method='fql', the suite plans 'mfql'": fake_run(tmp_path / "d", "offline", TASK, 0,
                                                                         method="fql"),
        # an option the suite does not set itself: the run's whole identity is compared, not the suite's options
        "config.yaml has agent.alpha=99, the suite plans 120": fake_run(tmp_path / "e", "offline", TASK, 0,
                                                                          extra=["agent.alpha=99"]),
        "eval.csv has 0 evaluations, none at step 0, 50, 100 (its score needs the evaluations at 0, 50, 100)":
            fake_run(tmp_path / "f", "offline", TASK, 0, eval_steps=()),
        "eval.csv has 2 evaluations, none at step 0 (its score needs": fake_run(tmp_path / "g", "offline", TASK, 0,
                                                                         eval_steps=(50, 100)),
    }
    for needle, run in cases.items():
        with pytest.raises(ResultError, match=re.escape(needle)):
            collect([run], "regenerate")


def test_the_scored_evaluations_follow_each_loop():
    from omegaconf import OmegaConf

    from mfql.agents.schedules import evaluation_steps

    run = {"offline_steps": 40, "online_steps": 0, "eval_interval": 20, "eval_episodes": 5, "parity": "official"}
    assert evaluation_steps(OmegaConf.create({**run, "method": "mfql"})) == [0, 20, 40]  # updates at step 0 too
    assert evaluation_steps(OmegaConf.create({**run, "method": "fql"})) == [20, 40]  # FQL's loop starts at 1
    assert evaluation_steps(OmegaConf.create({**run, "method": "mfql", "parity": "corrected"})) == [20, 40]
    assert evaluation_steps(OmegaConf.create({**run, "method": "mfql", "online_steps": 5})) == [0, 20, 40, 45]
    assert evaluation_steps(OmegaConf.create({**run, "method": "mfql", "eval_episodes": 0})) == []


@pytest.mark.slow
def test_a_header_only_eval_csv_is_written_back_from_final_pt(tmp_path, ogbench_dir):
    from mfql.report.results import collect

    out = tmp_path / "run"
    train(out, ogbench_dir.parent, "offline_steps=10")
    whole = (out / "eval.csv").read_bytes()
    (out / "eval.csv").write_text(whole.decode().splitlines()[0] + "\n")
    planned = {"setting": "offline", "variant": "mfql", "task": TASK, "seed": 0, "dir": str(out), "model": "small",
               "args": {"env_max_steps": 5, "eval_episodes": 1, "log_interval": 5, "eval_interval": 5,
                        "offline_steps": 10}}
    _, scores = collect([planned], "regenerate")
    assert len(scores) == 1 and (out / "eval.csv").read_bytes() == whole


@pytest.mark.slow
def test_stale_temporary_files_of_a_killed_write_are_cleaned(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    (out / "_resume").mkdir(parents=True)
    (out / "_resume" / ".state.pt.abc123.tmp").write_bytes(np.zeros(100).tobytes())
    (out / ".final.pt.def456.tmp").write_bytes(b"half")
    train(out, ogbench_dir.parent)
    assert not list(out.rglob("*.tmp")) and (out / "final.pt").is_file()
    shutil.rmtree(out)


# ------------------------------------------------------------------------------------------ faults
DISK_FULL_ON_THIRD_STATE = """
import errno, sys
import mfql.run.checkpoint as checkpoint
from mfql.config import run_cli
from mfql.train import main

real, states = checkpoint.atomic_write, []


def write_until_full(path, write, size=None):
    if str(path).endswith("state.pt"):
        states.append(path)
        if len(states) == 3:  # the third resume state (steps 0, 5, then 10) fills the disk half-way
            def half(tmp):
                with open(tmp, "wb") as handle:
                    handle.write(b"x" * 1000)
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(path, half, size)
    return real(path, write, size)


checkpoint.atomic_write = write_until_full
run_cli(main, "train", sys.argv[1:])
"""


@pytest.mark.slow
def test_disk_full_while_writing_the_resume_state_is_one_line_exit_3_and_keeps_the_last_state(tmp_path,
                                                                                             ogbench_dir):
    out = tmp_path / "run"
    args = train_args(out, ogbench_dir.parent, *TINY, "offline_steps=30", "checkpoint_interval=5")
    proc = subprocess.run([sys.executable, "-c", DISK_FULL_ON_THIRD_STATE, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    lines = error_lines(proc)
    assert proc.returncode == 3 and len(lines) == 1, proc.stderr[-2000:]
    assert f"the disk of {out / '_resume'} is full: state.pt needs " in lines[0] and "bytes free" in lines[0]
    assert [load_state(p)["step"] for p in sorted((out / "_resume").glob("*.pt"))] == [5]  # the last good state
    assert not list(out.rglob("*.tmp")) and not (out / "final.pt").exists()
    resumed = train(out, ogbench_dir.parent, "offline_steps=30", "checkpoint_interval=5")  # free space: go on
    assert "resumed from step 5" in resumed.stderr and (out / "final.pt").is_file()


@pytest.mark.slow
def test_missing_cpp_compiler_and_foreign_checkpoint_and_unreachable_minari_are_one_line(tmp_path, ogbench_dir):
    out = tmp_path / "run"
    proc = train(out, ogbench_dir.parent, "compile=true", check=False, env={**os.environ, "CXX": "/nowhere/g++"})
    assert proc.returncode == 2 and error_lines(proc) == [
        "error: compile=true on the CPU needs a C++ compiler for torch.compile and none is found (/nowhere/g++; "
        "set CXX to another); install one (e.g. apt install g++) or pass compile=false"]
    assert not out.exists()  # checked before any work

    foreign = tmp_path / "weights.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)  # a weights-only torch file, not mfql's
    proc = run_module("mfql.evaluate", f"checkpoint={foreign}", check=False)
    assert proc.returncode == 2 and len(error_lines(proc)) == 1
    assert "is a torch file but not a final.pt of mfql.train (it lacks config," in error_lines(proc)[0]

    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "mfql.fetch", "dataset=D4RL/pen/cloned-v2",
                           f"data_dir={tmp_path / 'minari'}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9"})  # nothing listens on port 9
    assert proc.returncode == 2 and [line for line in proc.stderr.splitlines() if line.strip()] == [
        "error: could not download dataset D4RL/pen/cloned-v2: Minari's remote 127.0.0.1:9 cannot be reached "
        "(Connection refused); check the network, or copy the dataset into <data_dir>/minari from a machine that "
        "has it"]
    assert time.time() - started < 60 and not (tmp_path / "minari").exists()
