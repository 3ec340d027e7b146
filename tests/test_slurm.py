"""`snakemake --profile slurm` against a real single-node SLURM cluster (tools/local-slurm.sh)."""

import os
import re
import shutil
import subprocess
import time

import pytest

from mfql.checkpoint import load_state
from tests.conftest import ROOT
from tests.test_workflow import CI_CONFIG

SLURM_CONFIG = ROOT / "tests" / "workflow" / "slurm.yaml"
RUN = "results/offline/cube-single-play-singletask-task1-v0/seed0"


@pytest.fixture(scope="module")
def cluster():
    proc = subprocess.run([str(ROOT / "tools" / "local-slurm.sh"), "up"], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0 or not shutil.which("sbatch"):
        message = f"could not start the local SLURM cluster: {proc.stderr[-1000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (needs root and Debian's slurm-wlm and munge)")
    return True


def profile_run(work, config, suite, *extra):
    """`snakemake --profile slurm` typed literally in the repository root, working in a scratch folder; the
    suite is chosen on the command line, as a user does (the profile's default is the paper suite)."""
    return subprocess.Popen(
        ["snakemake", "--profile", "slurm", "--directory", str(work), "--configfile", str(config),
         "--config", f"suite={suite}", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_quick_suite_runs_through_sbatch(cluster, tmp_path):
    proc = profile_run(tmp_path, CI_CONFIG, "ci")
    out, _ = proc.communicate(timeout=1500)
    assert proc.returncode == 0, out[-4000:]
    assert (tmp_path / "results" / "verification" / "report.md").exists()
    assert (tmp_path / "results" / "tables" / "o2o.md").exists()
    submitted = set(re.findall(r"SLURM jobid (\d+)", out))
    assert len(submitted) >= 5, out[-3000:]  # 2 offline + 1 O2O + 3 evaluations + toy went through sbatch
    slurm_logs = list((tmp_path / "logs" / "slurm").rglob("*.log"))
    rules = {p.relative_to(tmp_path / "logs" / "slurm").parts[0].removeprefix("rule_") for p in slurm_logs}
    assert {"train_offline", "finetune_online", "evaluate_policy", "run_toy"} <= rules
    assert not {"fetch_ogbench", "collect_runs"} & rules  # downloads and aggregation stay on the login node
    # each SLURM log is that of a job step run by sbatch, and names its SLURM job id in its file name
    train_logs = list((tmp_path / "logs" / "slurm" / "rule_train_offline").rglob("*.log"))
    assert len(train_logs) == 2 and all(p.stem in submitted for p in train_logs)
    assert "--executor slurm-jobstep" in train_logs[0].read_text()


def test_cancelled_training_job_is_retried_and_resumes(cluster, tmp_path):
    proc = profile_run(tmp_path, SLURM_CONFIG, "slurm")
    state = tmp_path / RUN / "_resume" / "state.pt"
    deadline, cancelled_at = time.time() + 900, None
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            try:
                step = load_state(state)["step"]
            except Exception:
                step = -1
            if step >= 300:
                jobs = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout
                ids = [line.split()[0] for line in jobs.splitlines() if line.strip()]
                assert ids, "no SLURM job to cancel"
                subprocess.run(["scancel", *ids], check=True)
                cancelled_at = step
                break
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=1500)
    assert cancelled_at is not None, out[-3000:]
    assert proc.returncode == 0, out[-4000:]
    log = (tmp_path / "logs" / "train_offline" / "cube-single-play-singletask-task1-v0" / "seed0.log").read_text()
    resumed = [int(s) for s in re.findall(r"resumed from step (\d+)", log)]
    assert resumed and resumed[0] >= cancelled_at, log[-2000:]  # the step counter did not restart
    steps = [int(line.split(",")[0]) for line in (tmp_path / RUN / "eval.csv").read_text().splitlines()[1:]]
    assert steps == [0, 500, 1000, 1500]
