"""The Snakemake workflow: lint, the paper suite's plan, config errors, a reduced quick suite end to end,
the HTML report in a real browser, and a single-target rerun."""

import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from mfql.config import known_tasks, load_task
from mfql.data.datasets import dataset_mb
from mfql.fetch import record_checksums
from mfql.plan import TRAIN_RULES, Plan, builtin_variants
from tests.conftest import CI_CONFIG, ROOT, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]  # Snakemake, SLURM or DVC end to end: minutes

SWEEP_USER = ROOT / "tests" / "workflow" / "sweep_user.yaml"
SUITES = ", ".join(OmegaConf.load(ROOT / "config" / "config.yaml").suites)
BUILTIN = ", ".join(builtin_variants())  # the paper's method and its baselines, a variant each
TRAIN_SETTINGS = {rule: setting for setting, rule in TRAIN_RULES.items()}


def job_counts(output: str) -> dict:
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_is_clean():
    proc = snakemake("--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr


def test_paper_suite_plan_has_every_method_for_every_task_and_seed():
    plan = snakemake("-n", "-p", "--config", "suite=paper", timeout=300).stdout
    counts = job_counts(plan)
    # seeds_per_job 8: one job per variant and task trains its 8 seeds (4 for the 5 visual tasks) in one process
    assert counts["train_offline_seeds_0_1_2_3_4_5_6_7"] == 3 * 68 and counts["train_offline_seeds_0_1_2_3"] == 3 * 5
    assert "seeds='[0,1,2,3,4,5,6,7]' out_dir=results/offline/fql/door-human-v1 " in plan
    assert re.search(r"out_dir=results/offline/fql/door-human-v1 .* method=fql ", plan)
    # and O2O: one job per variant and task for its 8 seeds, each seed with its own environment and online rows
    assert re.search(r"out_dir=results/offline/rebrac/door-human-v1 .* method=rebrac ", plan)
    assert counts["finetune_online_seeds_0_1_2_3_4_5_6_7"] == 3 * 15 and "finetune_online" not in counts
    assert counts["fetch_ogbench"] == 15 and counts["fetch_minari"] == 18 and counts["claims"] == 1
    for method in ("mfql", "fql", "rebrac"):
        planned = set(re.findall(rf"results/offline/{method}/([^/]+)/seed\d+/final\.pt", plan))
        assert planned == set(known_tasks()) and len(planned) == 73
        o2o = set(re.findall(rf"results/o2o/{method}/([^/]+)/seed\d+/final\.pt", plan))
        assert len(o2o) == 15 and {"antmaze-umaze-v2", "relocate-cloned-v1",
                                   "puzzle-4x4-play-singletask-task4-v0"} <= o2o


def test_ablation_and_sweep_plans():
    counts = job_counts(snakemake("-n", "--config", "suite=ablations", timeout=300).stdout)
    assert counts["train_offline_seeds_0_1_2_3_4_5_6_7"] == 5 * 10  # 5 variants x one task per environment
    plan = snakemake("-n", "-p", "--config", "suite=sweep", timeout=300).stdout
    # MFQL on 16 environments' default tasks and ReBRAC on 27, five values each
    assert job_counts(plan)["train_offline_seeds_0_1"] == 16 * 5 + 27 * 5 and job_counts(plan)["select_alpha"] == 1
    assert "rebrac-alpha0.1/cube-single-play-singletask-task2-v0/" in plan  # ReBRAC's our-choice 1 x 0.1
    # cube-single's default task at five alphas around its task file's 120; a task with a published alpha:
    # none (cube-double task2 is published, so its environment is not swept)
    assert set(re.findall(r"results/offline/mfql-alpha([0-9.]+)/cube-single-play-singletask-task2-v0/", plan)) == {
        "12", "36", "120", "360", "1200"}
    assert "mfql-alpha" not in "".join(re.findall(r"\S*/cube-double-play\S*", plan)) and "agent.alpha=36.0" in plan
    assert "results/offline/rebrac-alpha0.1/cube-double-play-singletask-task2-v0/" in plan  # ReBRAC's: our choice
    # a suite that uses the sweep's picks needs them: one line, not a traceback
    proc = snakemake("-n", "--configfile", str(SWEEP_USER), "--config", "suite=sweep_user", check=False)
    assert proc.returncode != 0
    assert ("config error: alpha_source: swept needs the sweep's overlay results/sweep/alpha.yaml, and there is "
            "none; run the sweep first") in proc.stdout + proc.stderr


@pytest.mark.parametrize("override, needle", [
    (["--config", "suite=huge"], f"suite: 'huge' is not defined (valid: {SUITES})"),
    (["--config", "suite=paper", "strict=maybe"], "config error: strict: 'maybe' is not of type 'boolean'"),
    (["results/offline/mfql/cube-single-play-singletask-task9-v0/seed0/final.pt"],
     "target results/offline/mfql/cube-single-play-singletask-task9-v0/: unknown task "
     "'cube-single-play-singletask-task9-v0' (valid: ids of config/mfql/tasks/*.yaml"),
    (["results/offline/mfql-K9/cube-single-play-singletask-task1-v0/seed0/final.pt"],
     "target results/offline/mfql-K9/cube-single-play-singletask-task1-v0/: unknown variant 'mfql-K9' (valid: "
     f"{BUILTIN}, mfql-K1, mfql-fixed_alpha, mfql-corrected, mfql-mlp_actor, mfql-short_budget, or "
     "<variant>-alpha<number>)"),
])
def test_bad_config_stops_before_any_job(override, needle, tmp_path):
    proc = snakemake("-n", *override, check=False)
    assert proc.returncode != 0 and needle in proc.stdout + proc.stderr


def user_suite(tmp_path, old, new):
    path = tmp_path / "suite.yaml"
    text = CI_CONFIG.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return path


OFFLINE_ARGS = "args: {offline_steps: 40, eval_interval: 20, eval_episodes: 2, log_interval: 20, env_max_steps: 20}"


@pytest.mark.parametrize("old, new, needle", [
    (OFFLINE_ARGS, 'args: {env_max_steps: "30; touch MARKER"}',
     "config error: suites.ci.offline.args.env_max_steps: '30; touch MARKER' does not match"),
    ("data_dir: resources", 'data_dir: "res; touch MARKER"',
     "config error: data_dir: 'res; touch MARKER' does not match"),
    (OFFLINE_ARGS, "args: {learning_rate: 3}",
     "config error: suites.ci.offline.args: unknown or malformed option 'learning_rate=3'"),
    (OFFLINE_ARGS, "args: {agent.alpha: abc}",
     "config error: suites.ci.offline.args: agent.alpha='abc' is not valid (valid: a finite number)"),
    (OFFLINE_ARGS, "args: {eval_episodes: 0}",
     "config error: suites.ci.offline.args.eval_episodes: 0 is less than the minimum of 1"),
    (OFFLINE_ARGS, "args: {seed: 3}", "config error: suites.ci.offline.args.seed: set by the pipeline"),
    ("variants: [mfql, fql, rebrac]", "variants: [mfql, sac]",
     f"config error: suites.ci.variants: unknown variant 'sac' (valid: {BUILTIN}, or <variant>-alpha<number>)"),
    ("variants: [mfql, fql, rebrac]", "variants: [mfql, mfql-alpha3]\n    alpha_source: swept",
     "config error: alpha_source: swept needs the sweep's overlay results/sweep/alpha.yaml"),
])
def test_suite_options_are_checked_when_planned_and_never_reach_a_shell(tmp_path, old, new, needle):
    work = tmp_path / "work"
    work.mkdir()
    config = user_suite(tmp_path, old, new)
    proc = snakemake("--directory", str(work), "--configfile", str(config), "--cores", "1", check=False)
    assert proc.returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and needle in errors[0], errors
    assert not (work / "MARKER").exists() and not (ROOT / "MARKER").exists()
    assert not (work / "results").exists()


def test_list_options_reach_the_command_quoted(tmp_path):
    config = user_suite(tmp_path, OFFLINE_ARGS, "args: {offline_steps: 100, agent.alpha_bounds: [0.5, 2.0]}")
    proc = snakemake("-n", "-p", "--directory", str(tmp_path), "--configfile", str(config))
    assert "'agent.alpha_bounds=[0.5,2.0]'" in proc.stdout  # quoted for the shell, as Hydra reads it back


def test_bad_value_in_a_user_suite_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CI_CONFIG.read_text().replace("model: small", "model: huge"))
    proc = snakemake("-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "suites.ci.model: 'huge' is not one of ['paper', 'small']" in proc.stdout + proc.stderr


def test_training_jobs_ask_the_planned_memory_once_their_dataset_is_there(ogbench_dir, tmp_path):
    """Before the dataset is fetched a training job asks the suite's mem_mb; once it is there (Snakemake asks
    again when a job is ready), the planner's formula over the dataset's size."""
    args = ("-n", "--directory", str(tmp_path), "--configfile", str(CI_CONFIG))
    before = job_resources(snakemake(*args).stdout)
    assert before and set(before.values()) == {2000}
    shutil.copytree(ogbench_dir, tmp_path / "resources" / "ogbench")
    record = record_checksums("cube-single-play-v0", tmp_path / "resources")
    after = job_resources(snakemake(*args).stdout)
    plan = Plan(OmegaConf.to_container(OmegaConf.load(CI_CONFIG)), {t: load_task(t) for t in known_tasks()})
    assert after == {(rule, variant, task): plan.job_mem_mb(TRAIN_SETTINGS[rule], variant, task, 1, dataset_mb(record))
                     for rule, variant, task in before}
    assert len(set(after.values())) >= 2 and all(mem < 2000 for mem in after.values())  # O2O holds one more env


def job_resources(output: str) -> dict:
    """{(training rule, variant, task): mem_mb} of a dry run's training jobs."""
    jobs = {}
    for block in output.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0]
        if rule in TRAIN_SETTINGS:
            wildcards = dict(re.findall(r"(\w+)=([^,\s]+)", block.split("wildcards:")[1].splitlines()[0]))
            jobs[rule, wildcards["variant"], wildcards["task"]] = int(re.search(r"mem_mb=(\d+)", block).group(1))
    return jobs


def test_quick_suite_produces_tables_figures_and_reports(quick_run):
    results = quick_run / "results"
    for name in ("offline", "offline_env", "o2o"):
        for ext in ("csv", "md", "tex"):
            assert (results / "tables" / f"{name}.{ext}").stat().st_size > 0
    for name in ("curves_offline", "curves_env", "curves_o2o", "aggregates", "claims", "profiles", "efficiency"):
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert (results / "figures" / "toy" / "toy.png").exists()
    offline = pd.read_csv(results / "tables" / "offline.csv")  # every method, one row each
    assert list(offline.task) == ["cube-single-play-singletask-task1-v0"] * 3 and list(offline.n) == [2, 2, 2]
    assert list(offline.variant) == ["mfql", "fql", "rebrac"]
    assert "| task | mfql | fql | rebrac |" in (results / "tables" / "offline.md").read_text()
    fql = OmegaConf.load(results / "offline/fql/cube-single-play-singletask-task1-v0/seed0/config.yaml")
    assert fql.method == "fql" and fql.agent.alpha == 300  # FQL's own per-task value (FQL README)
    claims = pd.read_csv(results / "verification" / "claims.csv")
    assert set(claims.level) == {"task", "environment", "suite"} and set(claims.setting) == {"offline", "o2o"}
    assert (claims.runs_method == claims.runs_baseline).all() and claims.poi.between(0, 1).all()
    assert set(claims.baseline) == {"fql", "rebrac"}
    text = (results / "verification" / "claims.md").read_text()
    assert "## MeanFlow-QL vs FQL" in text and "## MeanFlow-QL vs ReBRAC" in text
    efficiency = pd.read_csv(results / "tables" / "efficiency.csv")  # each method's score beside its cost
    assert list(efficiency.method) == ["mfql", "fql", "rebrac"] and list(efficiency.calls_per_action) == [2, 1, 1]
    assert (efficiency.updates_per_s > 0).all() and (efficiency.act_latency_ms_batch1 > 0).all()
    assert "# Performance and efficiency, per method" in (results / "tables" / "efficiency.md").read_text()
    o2o = pd.read_csv(results / "tables" / "o2o.csv")
    assert {"before_mean", "after_mean"} <= set(o2o.columns)
    report = pd.read_csv(results / "verification" / "report.csv")
    ours = report[report.task.str.startswith("cube-single-play-singletask")]
    assert set(ours.status) == {"no reported number"} and set(ours.variant) == {"mfql", "fql", "rebrac"}
    env = report[report.task == "cube-single-play (all 5 tasks)"].iloc[0]  # FQL's published average
    assert env.method == "FQL" and env.status == "not comparable" and env.reason == (
        "1 of the environment's 5 tasks run")
    reported = report[report.reported_mean.notna()]
    assert set(reported.status) == {"not comparable"}  # the quick suite is honest: nothing to compare
    assert "Status counts" in (results / "verification" / "report.md").read_text()
    assert (results / "report.html").stat().st_size > 100_000
    assert (quick_run / "benchmarks" / "train_offline").is_dir()


def test_report_opens_in_a_real_browser(quick_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        message = "headless Chromium is needed (Debian package chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path}",
         "--virtual-time-budget=15000", "--dump-dom", (quick_run / "results" / "report.html").as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    # rendered by the report's JavaScript, not present as such in the HTML source
    for text in ("Verification", "Learning curves", "Tables"):
        assert text in dom
    assert len(dom) > 5000


def test_a_finished_run_is_kept_when_its_options_change_and_retrained_only_when_removed(quick_run, tmp_path):
    """A changed option reruns the run's job, which stops with one line and leaves final.pt as it was (update-
    flagged: Snakemake does not delete it first). Removing the seed's folder retrains that one run only, and
    only what depends on it."""
    target = "results/offline/mfql/cube-single-play-singletask-task1-v0/seed1/final.pt"
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(quick_run), "--configfile", str(CI_CONFIG)]
    assert "Nothing to be done" in snakemake("-n", *args).stdout
    changed = tmp_path / "changed.yaml"
    changed.write_text(CI_CONFIG.read_text().replace("offline_steps: 40,", "offline_steps: 60,"))
    finished = (quick_run / target).read_bytes()
    proc = snakemake(*args[:4], "--configfile", str(changed), "--cores", "1", target, check=False)
    assert proc.returncode != 0 and (quick_run / target).read_bytes() == finished
    log = (quick_run / "logs/train_offline/mfql/cube-single-play-singletask-task1-v0/seed1.log").read_text()
    assert log.startswith("error: out_dir=") and "holds another run" in log and log.count("\n") == 1

    shutil.rmtree((quick_run / target).parent)
    proc = snakemake("-n", *args)
    counts = job_counts(proc.stdout)
    assert counts["train_offline"] == 1 and "finetune_online" not in counts and "run_toy" not in counts
    assert counts["evaluate_policy"] == 1 and counts["make_tables"] == 1 and counts["verify_results"] == 1
    assert "seed=1" in proc.stdout and "seed=0, " not in proc.stdout.split("rule train_offline")[1].split("rule")[0]
    # and running just that target retrains that one run only; its sibling seed is untouched
    sibling = quick_run / target.replace("seed1", "seed0")
    before = sibling.stat().st_mtime_ns
    single = snakemake(*args, "--cores", "2", "--until", target)
    assert job_counts(single.stdout + single.stderr) == {"train_offline": 1}
    assert sibling.stat().st_mtime_ns == before and (quick_run / target).is_file()


def test_packed_job_rerun_for_one_missing_seed_trains_only_that_seed(quick_run, tmp_path):
    """With seeds_per_job 2 the two offline seeds are one job; with seed 1's folder gone (docs/configuration.md:
    "remove its folder"), the job reruns, keeps seed 0's final.pt (update-flagged) and mfql.train retrains seed 1
    alone. In a copy of the quick suite's folder, which the other tests keep using unpacked."""
    import yaml

    packed = yaml.safe_load(CI_CONFIG.read_text())
    packed["suites"]["ci"]["offline"]["seeds_per_job"] = 2
    config = tmp_path / "packed.yaml"
    config.write_text(yaml.safe_dump(packed))
    work = tmp_path / "work"
    shutil.copytree(quick_run, work, symlinks=True)
    # mtime only: the folder was trained one seed per job, and the code trigger would rerun every variant's
    # packed job (a no-op for its finished seeds, as the rerun below shows for seed 0)
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--configfile", str(config),
            "--rerun-triggers", "mtime"]
    runs = work / "results" / "offline" / "mfql" / "cube-single-play-singletask-task1-v0"
    kept = (runs / "seed0" / "final.pt").read_bytes()  # Snakemake touches a job's outputs: compare contents
    shutil.rmtree(runs / "seed1")
    target = str((runs / "seed1" / "final.pt").relative_to(work))
    proc = snakemake("-p", target, *args, "--cores", "2")
    out = proc.stdout + proc.stderr
    assert job_counts(out) == {"train_offline_seeds_0_1": 1} and "seeds='[0,1]'" in out
    assert (runs / "seed0" / "final.pt").read_bytes() == kept
    assert (runs / "seed1" / "final.pt").is_file() and (runs / "seed1" / "eval.csv").is_file()
    log = (work / "logs/train_offline/mfql/cube-single-play-singletask-task1-v0/seeds0-1.log").read_text()
    assert "seed0 already holds this finished run" in log and "done: " in log and "seed1/final.pt" in log


def test_deleted_evaluation_outputs_are_restored_and_reevaluated_not_retrained(quick_run):
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(quick_run), "--configfile", str(CI_CONFIG)]
    run = quick_run / "results" / "offline" / "mfql" / "cube-single-play-singletask-task1-v0" / "seed0"
    curve, final_eval = (run / "eval.csv").read_text(), (run / "final_eval.json").read_text()
    stamp = (run / "final.pt").stat().st_mtime_ns
    (run / "eval.csv").unlink()
    (run / "final_eval.json").unlink()
    targets = [str((run / name).relative_to(quick_run)) for name in ("eval.csv", "final_eval.json")]
    proc = snakemake(*targets, *args, "--cores", "2")
    assert job_counts(proc.stdout + proc.stderr) == {"run_files": 1, "evaluate_policy": 1}  # nothing trains
    assert (run / "final.pt").stat().st_mtime_ns == stamp  # not retrained
    assert (run / "eval.csv").read_text() == curve and (run / "final_eval.json").read_text() == final_eval


def test_tables_ignore_folders_the_suite_does_not_plan(quick_run):
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(quick_run), "--configfile", str(CI_CONFIG)]
    results = quick_run / "results" / "offline" / "mfql"
    stray = results / "cube-single-play-singletask-task3-v0" / "seed0"  # e.g. left by another suite
    shutil.copytree(results / "cube-single-play-singletask-task1-v0" / "seed0", stray)
    try:
        snakemake(*args, "--cores", "1", "--forcerun", "results/tables/runs.csv")
        scores = pd.read_csv(quick_run / "results" / "tables" / "scores.csv")
        assert set(scores.task) == {"cube-single-play-singletask-task1-v0", "cube-single-play-singletask-task2-v0"}
        assert len(scores) == 3 * 3  # (2 offline seeds + 1 O2O run) x 3 methods: exactly the plan
    finally:
        shutil.rmtree(stray.parent)


def test_strict_verification_fails_the_run_and_keeps_the_report(quick_run):
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(quick_run), "--configfile", str(CI_CONFIG),
            "--cores", "1"]
    snakemake(*args)  # up to date first (an earlier test retrained one run)
    summary = quick_run / "results" / "verification" / "summary.json"
    summary.write_text('{"counts": {"reproduced": 1, "differs": 2, "not comparable": 0, '
                       '"no reported number": 0}, "rows": 3}')
    target = "results/verification/check.txt"
    only = [target, "--forcerun", target, "--allowed-rules", "check_verification"]
    lenient = snakemake(*args, *only)
    assert lenient.returncode == 0
    strict = snakemake(*args, *only, "--config", "strict=True", check=False)
    assert strict.returncode != 0
    log = (quick_run / "logs" / "check_verification.log").read_text()
    assert "verify.strict: 2 reported number(s) differ" in log
    assert (quick_run / "results" / "verification" / "report.md").exists()


def test_sweep_writes_the_overlay_and_a_later_suite_trains_with_it(tmp_path):
    """A toy sweep (cube-single's default task, two alphas) writes results/sweep/alpha.yaml with, for each task of
    the environment, the alpha of the better run (several environments: tests/report/test_sweep.py); a suite with
    alpha_source: swept then trains cube-single tasks with it, and its mfql-K1 variant's option reaches the
    run's config.yaml."""
    import yaml

    from mfql.report.stats import run_score

    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(CI_CONFIG),
            str(SWEEP_USER)]
    snakemake(*args, "--config", "suite=sweep_ci", "--cores", "2", "results/sweep/alpha.yaml")
    overlay = yaml.safe_load((tmp_path / "results/sweep/alpha.yaml").read_text())["alpha"]
    assert list(overlay) == ["mfql"]  # the only method this sweep ran
    overlay = overlay["mfql"]
    best = {}
    env = "cube-single"  # the only environment this sweep ran
    default = f"{env}-play-singletask-task2-v0"
    scores = {}
    for alpha in (60, 240):  # the task files' 120 x 0.5 and x 2
        evals = pd.read_csv(tmp_path / f"results/offline/mfql-alpha{alpha}/{default}/seed0/eval.csv")
        scores[alpha] = run_score(evals.step.values, evals.success.values, "ogbench")
    best[env] = max(sorted(scores), key=lambda a: scores[a])  # ties: the smaller alpha
    tasks = {f"{env}-play-singletask-task{i}-v0" for i in range(1, 6)}
    assert tasks <= set(overlay) and {overlay[t]["alpha"] for t in tasks} == {float(best[env])}
    assert overlay[default]["source"].startswith(
        f"swept: alpha in [60, 240] on {default}, 40 offline steps, 1 seeds; rule: best mean score")
    assert len(overlay) == 5

    use = [*args, "--config", "suite=sweep_user"]
    plan = snakemake(*use, "-n", "-p").stdout
    assert plan.count(f"agent.alpha={float(best['cube-single'])}") == 4  # 2 tasks x 2 variants
    run = "results/offline/mfql-K1/cube-single-play-singletask-task1-v0/seed0"
    snakemake(*use, "--cores", "2", f"{run}/config.yaml")
    cfg = OmegaConf.load(tmp_path / run / "config.yaml")
    assert cfg.agent.alpha == best["cube-single"] and cfg.agent.num_candidates == 1 and cfg.method == "mfql"


def test_reduced_visual_suite_runs_packed_pixel_jobs_of_both_methods(tmp_path):
    """A pixel task through the pipeline: its dataset regenerated with rendered frames, one packed job per
    method training seeds 0 and 1, each run evaluated."""
    args = ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile", str(CI_CONFIG),
            str(ROOT / "tests/workflow/visual.yaml"), "--config", "suite=visual_ci"]
    proc = snakemake(*args, "--cores", "2", "runs")
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts["train_offline_seeds_0_1"] == 2 and counts["fetch_ogbench"] == 1
    task = "visual-cube-single-play-singletask-task1-v0"
    for variant in ("mfql", "fql"):
        for seed in (0, 1):
            run = tmp_path / f"results/offline/{variant}/{task}/seed{seed}"
            assert (run / "final_eval.json").is_file() and (run / "eval.csv").is_file()
            assert OmegaConf.load(run / "config.yaml").agent.encoder == "impala_small"
    frames = np.load(tmp_path / "resources/ogbench/visual-cube-single-play-v0.npz")["observations"]
    assert frames.shape == (41, 64, 64, 3) and frames.dtype == np.uint8
