"""DVC end to end: `dvc repro` over the reduced quick suite's runs, `dvc push` to a local remote, a fresh clone,
`dvc pull`, and Snakemake then has nothing to do, with byte-identical tables."""

import filecmp
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import CI_CONFIG, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]  # Snakemake, SLURM or DVC end to end: minutes


def sh(*cmd, cwd, timeout=1800):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def project_copy(dest):
    """The project's files (tracked and untracked-but-not-ignored), as a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    sh("git", "init", "-q", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "init", "--allow-empty", cwd=dest)
    sh("git", "add", "-A", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "project", cwd=dest)


def test_dvc_push_clone_pull_then_snakemake_has_nothing_to_do(tmp_path, monkeypatch, quick_run):
    # DVC's per-machine caches and config go to the test's folder, not /var/tmp or the home folder.
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site-cache"))
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "dvc-global"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "dvc-system"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    src, dst, remote = tmp_path / "src", tmp_path / "dst", tmp_path / "remote"
    src.mkdir()
    project_copy(src)
    params = yaml.safe_load((src / "params.yaml").read_text())
    params["snakemake"].update(configfile=str(CI_CONFIG.relative_to(ROOT)), cores=2)
    (src / "params.yaml").write_text(yaml.safe_dump(params))
    sh("dvc", "remote", "modify", "local", "url", str(remote), cwd=src)
    # the quick suite's data, runs and Snakemake's records of them, as a pipeline run in this project leaves
    # them: `dvc repro` then runs each stage's Snakemake targets, which train nothing that is already there
    for name in ("resources", "results", "logs", "benchmarks", ".snakemake"):
        shutil.copytree(quick_run / name, src / name, symlinks=True, ignore=shutil.ignore_patterns("locks"),
                        dirs_exist_ok=True)  # results/ holds the project's tracked files too

    # as after copying results between machines (docs/cluster.md, DVC): Snakemake's records name the folder
    snake = ["snakemake", "--configfile", str(CI_CONFIG.relative_to(ROOT))]
    sh(*snake, "--touch", "--cores", "1", cwd=src)
    trained = {p: p.stat().st_mtime_ns for p in (src / "results").rglob("final.pt")}
    assert len(trained) == 9

    sh("dvc", "repro", cwd=src)
    assert {p: p.stat().st_mtime_ns for p in (src / "results").rglob("final.pt")} == trained  # none retrained
    sh("dvc", "push", cwd=src)
    sh("git", "add", "-A", cwd=src)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results", cwd=src)
    metrics = sh("dvc", "metrics", "show", cwd=src)
    assert "counts.not comparable" in metrics

    sh("git", "clone", "-q", str(src), str(dst), cwd=tmp_path)
    assert not (dst / "results" / "offline").exists() and not (dst / "results" / "tables").exists()
    sh("dvc", "pull", cwd=dst)
    sh(*snake, "--touch", "--cores", "1", cwd=dst)
    plan = sh(*snake, "-n", cwd=dst)
    assert "Nothing to be done" in plan, plan[-2000:]
    tables = sorted(p.name for p in (src / "results" / "tables").iterdir())
    assert "offline.csv" in tables and "o2o.tex" in tables
    match, mismatch, errors = filecmp.cmpfiles(src / "results" / "tables", dst / "results" / "tables", tables,
                                               shallow=False)
    assert not mismatch and not errors and len(match) == len(tables)
    assert filecmp.cmp(src / "results" / "verification" / "report.md", dst / "results" / "verification" /
                       "report.md", shallow=False)
