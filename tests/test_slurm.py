"""`snakemake --profile slurm` against a real single-node SLURM cluster (tools/local-slurm.sh).

The cluster lives in a temporary folder (its own munge key, sockets, ports, state and pid files): the tests
install nothing and write nothing under /etc, and stop exactly the daemons they started, by their pids.
"""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mfql.plan import EFFICIENCY_BENCH
from mfql.run.checkpoint import load_state
from tests.conftest import CI_CONFIG, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]  # Snakemake, SLURM or DVC end to end: minutes

SLURM_CONFIG = ROOT / "tests" / "workflow" / "slurm.yaml"
RUN = "results/offline/mfql/cube-single-play-singletask-task1-v0/seed0"


def unavailable(message):
    if os.environ.get("CI"):  # .ci/run installs SLURM and runs as root: there, not running is a failure
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A private single-node cluster; yields the environment that points at it. Started only if SLURM is
    installed."""
    if not all(shutil.which(t) for t in ("sbatch", "slurmctld", "slurmd", "munged")):
        unavailable("SLURM is not installed (Debian: slurm-wlm, munge; `tools/local-slurm.sh install`)")
    if os.geteuid() != 0:
        unavailable("the local SLURM cluster needs root (slurmd starts the jobs)")
    folder = tmp_path_factory.mktemp("slurm")
    script = str(ROOT / "tools" / "local-slurm.sh")
    system = [Path(p) for p in ("/etc/slurm/slurm.conf", "/etc/munge/munge.key", "/run/munge")]
    before = {p: p.exists() and p.stat().st_mtime_ns for p in system}
    proc = subprocess.run([script, "up", str(folder)], capture_output=True, text=True, timeout=300)
    try:
        if proc.returncode != 0:
            unavailable(f"could not start the local SLURM cluster: {proc.stderr[-1000:]}")
        yield {**os.environ, "SLURM_CONF": str(folder / "slurm.conf"),
               "PATH": f"{folder / 'bin'}:{os.environ['PATH']}"}
    finally:
        subprocess.run([script, "down", str(folder)], capture_output=True, timeout=120)
        assert {p: p.exists() and p.stat().st_mtime_ns for p in system} == before, "system files changed"
        assert not list(folder.glob("*.pid")), "a daemon was left running"


def profile_run(work, config, suite, env, *extra):
    """`snakemake [targets] --profile slurm` typed literally in the repository root, working in a scratch folder;
    the suite is chosen on the command line, as a user does (the profile's default is the paper suite). Its jobs
    take seconds, not hours: Snakemake asks squeue after 2 s instead of the profile's 20 (then 10 s longer each
    time no job has ended), as a user may on the command line."""
    return subprocess.Popen(
        ["snakemake", *extra, "--profile", "slurm", "--directory", str(work), "--configfile", str(config),
         "--config", f"suite={suite}", "--slurm-init-seconds-before-status-checks", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def squeue_ids(env):
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, env=env).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_quick_suite_runs_through_sbatch(cluster, tmp_path):
    """The reduced quick suite with one method and one offline seed, up to its tables, toy and efficiency
    benchmark: every kind of job that goes through sbatch (6 jobs) and local jobs beside them; the figures and
    the verification are local jobs like the tables, run whole by the quick suite's test (tests/test_workflow.py)."""
    suite = yaml.safe_load(CI_CONFIG.read_text())
    suite["suites"]["ci"]["variants"] = ["mfql"]
    suite["suites"]["ci"]["offline"]["seeds"] = [0]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(suite, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir()
    proc = profile_run(work, config, "ci", cluster, "results/tables/o2o.md", "results/figures/toy/toy.png",
                       EFFICIENCY_BENCH)
    out, _ = proc.communicate(timeout=1500)
    assert proc.returncode == 0, out[-4000:]
    assert (work / "results" / "tables" / "o2o.md").exists() and (work / EFFICIENCY_BENCH).exists()
    submitted = set(re.findall(r"SLURM jobid (\d+)", out))
    # 1 offline run, 1 O2O run, their 2 evaluations, the toy and the efficiency benchmark: through sbatch
    assert len(submitted) >= 6, out[-3000:]
    slurm_logs = list((work / "logs" / "slurm").rglob("*.log"))
    rules = {p.relative_to(work / "logs" / "slurm").parts[0].removeprefix("rule_") for p in slurm_logs}
    assert {"train_offline", "finetune_online", "evaluate_policy", "run_toy", "measure_efficiency"} <= rules
    assert not {"fetch_ogbench", "collect_runs"} & rules  # downloads and aggregation stay on the login node
    # each SLURM log is that of a job step run by sbatch, and names its SLURM job id in its file name
    train_logs = list((work / "logs" / "slurm" / "rule_train_offline").rglob("*.log"))
    assert len(train_logs) == 1 and all(p.stem in submitted for p in train_logs)
    assert "--executor slurm-jobstep" in train_logs[0].read_text()


def test_cancelled_training_job_is_retried_and_resumes(cluster, tmp_path):
    proc = profile_run(tmp_path, SLURM_CONFIG, "slurm", cluster, f"{RUN}/final.pt")  # the training job only
    state = tmp_path / RUN / "_resume" / "state.pt"
    deadline, cancelled_at = time.time() + 900, None
    while time.time() < deadline and proc.poll() is None:
        if state.exists():
            try:
                step = load_state(state)["step"]
            except Exception:
                step = -1
            if step >= 150:
                ids = squeue_ids(cluster)  # this private cluster runs only this test's jobs
                assert ids, "no SLURM job to cancel"
                subprocess.run(["scancel", *ids], check=True, env=cluster)
                cancelled_at = step
                break
        time.sleep(0.5)
    out, _ = proc.communicate(timeout=1500)
    assert cancelled_at is not None, out[-3000:]
    assert proc.returncode == 0, out[-4000:]
    log = (tmp_path / "logs/train_offline/mfql/cube-single-play-singletask-task1-v0/seed0.log").read_text()
    resumed = [int(s) for s in re.findall(r"resumed from step (\d+)", log)]
    assert resumed and resumed[0] >= cancelled_at, log[-2000:]  # the step counter did not restart
    steps = [int(line.split(",")[0]) for line in (tmp_path / RUN / "eval.csv").read_text().splitlines()[1:]]
    assert steps == [0, 150, 300, 450]


def test_profile_without_slurm_says_so_in_one_line(tmp_path):
    """On a machine without SLURM's commands, `--profile slurm` stops with one line before any job."""
    bin_dir = tmp_path / "bin"  # a PATH with Python and the basics, without sbatch, squeue or sacct
    bin_dir.mkdir()
    for name, target in (("python", sys.executable), ("python3", sys.executable), ("which", shutil.which("which")),
                         ("bash", shutil.which("bash")), ("sh", shutil.which("sh"))):
        (bin_dir / name).symlink_to(target)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "--directory", str(work),
                           "--configfile", str(CI_CONFIG), "--config", "suite=ci"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": str(bin_dir)})
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "error" in line.lower()]
    assert errors == ["config error: the slurm executor (--profile slurm) needs SLURM's sbatch on PATH, and "
                      "there is none on this machine; run on the cluster's login node, or drop --profile slurm "
                      "to run locally"], errors
    assert sorted(p.name for p in work.iterdir()) == [".snakemake"]  # no job ran, no output written
