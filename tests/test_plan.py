"""The pipeline's planner (mfql/plan.py) without Snakemake: runs, packs, options, resources and the one-line
refusals, on config/config.yaml's own suites and on small made-up ones."""

import copy
from pathlib import Path

import pytest
import yaml

from mfql.config import known_tasks, load_task
from mfql.plan import (
    CUDA_MB,
    DATASET_COPIES,
    MEMORY_MARGIN,
    ONLINE_ROW_BYTES,
    PROCESS_MB,
    SEED_MB,
    SEED_MB_GPU,
    Plan,
    PlanError,
    run_dir,
    task_pattern,
    validate,
)
from mfql.run.envs import ENV_MB

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
CONFIG = yaml.safe_load((ROOT / "config/config.yaml").read_text())
TASKS = {t: load_task(t) for t in known_tasks()}
CUBE1, CUBE2 = "cube-single-play-singletask-task1-v0", "cube-single-play-singletask-task2-v0"


def plan_of(suite: str, **changes) -> Plan:
    config = copy.deepcopy(CONFIG)
    config["suite"] = suite
    config.update(changes)
    return Plan(config, TASKS)


def test_quick_suite_runs_every_method_on_its_tasks_and_seeds():
    plan = plan_of("quick")
    methods = ("mfql", "fql", "rebrac")
    assert plan.runs("offline") == [(v, t, s) for t in (CUBE1, CUBE2) for v in methods for s in (0, 1)]
    assert plan.runs("o2o") == [(v, CUBE2, 0) for v in methods]
    assert plan.seeds_per_job("offline") == 1
    assert len(plan.eval_files()) == 2 * (12 + 3)
    assert plan.dataset_files() == ["resources/checksums/cube-single-play-v0.json"]
    assert "results/sweep/alpha.yaml" not in plan.final_targets()


def test_paper_suite_plans_every_task_and_the_o2o_tasks_in_packs_of_eight():
    plan = plan_of("paper")
    assert plan.tasks_of("offline") == sorted(TASKS) and len(TASKS) == 73
    assert plan.tasks_of("o2o") == sorted(t for t, c in TASKS.items() if "o2o" in c)
    packs = plan.packs("offline")
    assert sum(len(tasks) for tasks in packs.values()) == 73  # each task once, in the pack of its seeds
    visual = [t for t in TASKS if TASKS[t].get("visual", False)]
    assert all(len(plan.seeds_of("offline", t)) == len(plan.suite["offline"].get("visual_seeds",
                                                                                   plan.suite["offline"]["seeds"]))
               for t in visual)


def test_laptop_suite_packs_three_seeds_per_task_and_runs_the_short_budget_variant():
    plan = plan_of("laptop")
    assert plan.packs("offline") == {(0, 1, 2): [CUBE1, CUBE2]}
    method, options = plan.variant_options("mfql-short_budget")
    assert method == "mfql" and options == {"agent.dynamic_alpha": False, "agent.discount": 0.99, "agent.alpha": 60,
                                           "agent.num_candidates": 1}
    args = plan.train_args("offline", "mfql-short_budget", CUBE1)
    assert args["offline_steps"] == 30000 and args["compile"] is True and args["agent.discount"] == 0.99


def test_laptop_o2o_suite_trains_online_only_one_job_per_seed():
    plan = plan_of("laptop_o2o")
    assert plan.runs("offline") == []
    assert plan.runs("o2o") == [(v, CUBE2, s) for v in ("mfql-short_budget", "fql") for s in (0, 1, 2)]
    assert plan.seeds_per_job("o2o") == 1
    args = plan.train_args("o2o", "fql", CUBE2)
    assert (args["offline_steps"], args["online_steps"], args["compile"]) == (30000, 20000, True)
    config = copy.deepcopy(CONFIG)
    del config["suites"]["laptop_o2o"]["o2o"]
    with pytest.raises(PlanError) as info:
        validate(config, SCHEMA)
    assert str(info.value) == "suites.laptop_o2o: trains nothing (valid: an offline: or an o2o: section, or both)"


def made_up(gpu: int = 0, model: str = "small", seeds: tuple = (0, 1, 2), args: dict | None = None) -> Plan:
    """A one-task suite of packed seeds: offline and O2O on cube-single task 2, its options ``args``."""
    part = {"tasks": [CUBE2], "seeds": list(seeds), "seeds_per_job": len(seeds), "args": args or {}}
    suite = {"data_source": "regenerate", "model": model, "gpu": gpu, "threads": 1, "runtime": 10, "mem_mb": 777,
             "eval_episodes_final": 20, "offline": part, "o2o": part,
             "toy": {"steps": 1, "batch_size": 1, "samples": 1}}
    return plan_of("made_up", suites={"made_up": suite})


def test_memory_request_adds_the_measured_parts_and_the_margin():
    # CPU, small model, 3 packed seeds, 20 episodes within 400 MB: 2 cube environments alive at once
    plan = made_up(args={"eval_episodes": 20, "env_memory_mb": 400})
    parts = plan.job_memory("offline", "mfql", CUBE2, 3, dataset_mb=100.0)
    assert parts == {"process": PROCESS_MB, "dataset": DATASET_COPIES["state"] * 100.0,
                     "environments": 2 * ENV_MB["manipulation"], "seeds": 3 * SEED_MB["state", "small"]}
    request = plan.job_mem_mb("offline", "mfql", CUBE2, 3, 100.0)
    needed = MEMORY_MARGIN * sum(parts.values())
    assert request % 100 == 0 and needed <= request < needed + 100
    # each part moves the request: a bigger dataset, more seeds, more environments alive
    bigger = plan.job_mem_mb("offline", "mfql", CUBE2, 3, 1100.0)
    assert bigger >= request + MEMORY_MARGIN * DATASET_COPIES["state"] * 1000 - 100
    assert plan.job_mem_mb("offline", "mfql", CUBE2, 6, 100.0) > request
    roomy = made_up(args={"eval_episodes": 20, "env_memory_mb": 4000})
    assert roomy.job_memory("offline", "mfql", CUBE2, 3, 100.0)["environments"] == 20 * ENV_MB["manipulation"]
    workers = made_up(args={"eval_episodes": 20, "env_memory_mb": 400, "env_workers": 2})
    assert workers.job_memory("offline", "mfql", CUBE2, 3, 100.0) == {**parts, "environment workers": 2 * PROCESS_MB}
    # before the dataset is there (a dry run ahead of the fetch): the suite's own figure
    assert plan.job_mem_mb("offline", "mfql", CUBE2, 3, None) == 777


def test_memory_request_counts_online_environments_and_rows_on_a_cpu_only():
    args = {"eval_episodes": 20, "env_memory_mb": 540, "online_steps": 20000}
    cpu = made_up(args=args).job_memory("o2o", "mfql", CUBE2, 3, 100.0)
    # 3 online environments, and 540 MB hold 3 environments in all: the evaluation pool keeps its one
    assert cpu["environments"] == (3 + 1) * ENV_MB["manipulation"]
    assert cpu["online rows"] == pytest.approx(3 * 20000 * ONLINE_ROW_BYTES["state"] / 2**20)
    offline = made_up(args={"eval_episodes": 20, "env_memory_mb": 540}).job_memory("offline", "mfql", CUBE2, 3, 100.0)
    assert "online rows" not in offline and offline["environments"] == 3 * ENV_MB["manipulation"]
    gpu = made_up(gpu=1, model="paper", args=args).job_memory("o2o", "mfql", CUBE2, 3, 100.0)
    assert gpu["process"] == PROCESS_MB + CUDA_MB and gpu["seeds"] == 3 * SEED_MB_GPU and "online rows" not in gpu


def test_memory_request_of_a_pixel_task_counts_its_frames_once():
    plan = plan_of("paper")
    visual = next(t for t in sorted(TASKS) if TASKS[t].get("visual", False))
    seeds = len(plan.seeds_of("offline", visual))
    parts = plan.job_memory("offline", "mfql", visual, seeds, dataset_mb=12_000.0)
    assert parts["dataset"] == 12_000.0 and DATASET_COPIES["pixels"] == 1
    assert parts["environments"] == (2000 // ENV_MB["pixels"]) * ENV_MB["pixels"]  # the default budget
    assert plan.evaluation_mem_mb(visual) >= MEMORY_MARGIN * (PROCESS_MB + parts["environments"])


def test_job_runtime_scales_with_setting_pack_pixels_and_attempt():
    plan = plan_of("paper")
    base = plan.suite["runtime"]
    assert plan.job_runtime("offline", 1, 1, CUBE1) == base
    assert plan.job_runtime("o2o", 1, 1, CUBE1) == 2 * base
    assert plan.job_runtime("offline", 8, 1, CUBE1) == 4 * base and plan.job_runtime("offline", 3, 1, CUBE1) == 2 * base
    assert plan.job_runtime("offline", 1, 1, "visual-cube-single-play-singletask-task1-v0") == 3 * base
    assert plan.job_runtime("offline", 1, 2, CUBE1) == 2 * base


def test_options_are_the_suite_args_then_the_variant_then_what_the_pipeline_sets_each_in_key_order():
    plan = plan_of("quick")
    options = plan.train_options("offline", "mfql-K1", CUBE1)
    assert options[:5] == ["eval_episodes=10", "eval_interval=500", "log_interval=250", "offline_steps=1000",
                           "method=mfql"]
    assert options[5:] == ["agent.num_candidates=1", "model=small", "device=cpu"]
    # the order a suite lists its args in changes no command (Snakemake would rerun the job: params changed)
    config = copy.deepcopy(CONFIG)
    for part in ("offline", "o2o"):
        args = config["suites"]["quick"][part]["args"]
        config["suites"]["quick"][part]["args"] = dict(reversed(list(args.items())))
    reordered = Plan({**config, "suite": "quick"}, TASKS)
    assert list(reordered.suite["offline"]["args"]) != list(plan.suite["offline"]["args"])
    for setting, runs in (("offline", plan.runs("offline")), ("o2o", plan.runs("o2o"))):
        for variant, task, _ in runs:
            assert reordered.train_options(setting, variant, task) == plan.train_options(setting, variant, task)
    assert plan_of("quick", overwrite=True).train_options("offline", "fql", CUBE1)[-1] == "overwrite=true"
    assert run_dir("o2o", "fql", CUBE2, 3) == f"results/o2o/fql/{CUBE2}/seed3"


def test_sweep_variants_and_swept_alpha():
    plan = plan_of("sweep")
    task = plan.tasks_of("offline")[0]
    names = plan.variants_of(task)
    alpha = float(TASKS[task].mfql.alpha)
    assert f"mfql-alpha{alpha:g}" in names and all("-alpha" in n for n in names)
    assert plan.variant_options(names[0])[1]["agent.alpha"] == float(names[0].split("-alpha")[1])
    assert "results/sweep/alpha.yaml" in plan.final_targets()
    # ReBRAC's sweep tunes its actor's BC weight, on the environments whose value is our choice
    assert plan.variant_options("rebrac-alpha0.3")[1] == {"agent.alpha_actor": 0.3}
    humanoid = "humanoidmaze-large-navigate-singletask-task1-v0"  # MFQL's alpha published there, ReBRAC's not
    assert humanoid in plan.tasks_of("offline") and plan.variants_of(humanoid) == [
        f"rebrac-alpha{a}" for a in ("0.001", "0.003", "0.01", "0.03", "0.1")]
    # the sweep's pick applies to offline runs of the method it was swept for, never over a variant's own value
    user = plan_of("quick")
    user.swept_alpha = {"mfql": {CUBE1: {"alpha": 7.0}}, "rebrac": {CUBE1: {"alpha": 0.3}}}
    assert user.train_args("offline", "mfql", CUBE1)["agent.alpha"] == 7.0
    assert user.train_args("offline", "rebrac", CUBE1)["agent.alpha_actor"] == 0.3
    assert "agent.alpha" not in user.train_args("offline", "fql", CUBE1)
    assert "agent.alpha" not in user.train_args("o2o", "mfql", CUBE1)
    assert user.train_args("offline", "mfql-alpha30", CUBE1)["agent.alpha"] == 30.0


@pytest.mark.parametrize("change, message", [
    ({"suite": "huge"}, "suite: 'huge' is not defined (valid: "),
    ({"strict": "maybe"}, "strict: 'maybe' is not of type 'boolean'"),
    ({"variants": {"mfql-alpha3": {"method": "mfql"}}}, "variants.mfql-alpha3: names ending in -alpha<number>"),
])
def test_bad_workflow_config_is_one_line(change, message):
    config = {**copy.deepcopy(CONFIG), **change}
    with pytest.raises(PlanError) as info:
        validate(config, SCHEMA)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_suite_naming_an_unknown_variant_or_task_is_refused():
    config = copy.deepcopy(CONFIG)
    config["suites"]["quick"]["variants"] = ["mfql", "sac"]
    with pytest.raises(PlanError, match=r"suites.quick.variants: unknown variant 'sac' \(valid: mfql, fql, "):
        validate(config, SCHEMA)
    config = copy.deepcopy(CONFIG)
    config["suites"]["quick"]["offline"]["tasks"] = ["cube-single-play-singletask-task9-v0"]
    with pytest.raises(PlanError, match="suites.quick.offline.tasks: unknown task 'cube-single-play-singletask-task9"):
        validate(config, SCHEMA)


def test_a_target_of_an_unknown_variant_or_task_is_refused():
    plan = plan_of("quick")
    plan.check_run("offline", "mfql-alpha30", CUBE1)  # a sweep variant of a known one
    with pytest.raises(PlanError, match="unknown variant 'mfql-K9'"):
        plan.check_run("offline", "mfql-K9", CUBE1)
    with pytest.raises(PlanError, match=r"unknown task 'cube-single-play-singletask-task9-v0' .*e\.g\. cube-single"):
        plan.check_run("offline", "mfql", "cube-single-play-singletask-task9-v0")


def test_pipeline_keys_and_bad_options_are_refused_before_any_job():
    config = copy.deepcopy(CONFIG)
    config["suites"]["quick"]["offline"]["args"]["seed"] = 3
    with pytest.raises(PlanError, match="suites.quick.offline.args.seed: set by the pipeline"):
        Plan(config, TASKS).check_train_args()
    config = copy.deepcopy(CONFIG)
    config["variants"]["mfql"]["args"] = {"agent.num_candidates": 0}
    with pytest.raises(PlanError, match="^variants.mfql: .*agent.num_candidates"):
        Plan(config, TASKS).check_train_args()


def test_task_pattern_matches_exactly_its_tasks():
    import re
    pattern = re.compile(f"^(?:{task_pattern([CUBE1, 'antmaze-large-diverse-v2'])})$")
    assert pattern.match(CUBE1) and pattern.match("antmaze-large-diverse-v2")
    assert not pattern.match(CUBE2) and not pattern.match("antmaze-large-diverseXv2")


def test_a_suites_agent_option_reaches_the_methods_that_have_it_and_one_that_none_has_is_refused():
    config = copy.deepcopy(CONFIG)
    config["suites"]["quick"]["offline"]["args"].update({"agent.alpha_bounds": [0.5, 2.0], "agent.discount": 0.9})
    plan = Plan(config, TASKS)
    plan.check_train_args()
    assert plan.train_args("offline", "mfql", CUBE1)["agent.alpha_bounds"] == [0.5, 2.0]
    assert "agent.alpha_bounds" not in plan.train_args("offline", "fql", CUBE1)  # MeanFlow-QL's option only
    assert plan.train_args("offline", "fql", CUBE1)["agent.discount"] == 0.9  # every method has a discount
    config["suites"]["quick"]["offline"]["args"]["agent.num_candidatess"] = 3
    with pytest.raises(PlanError, match=r"^suites.quick.offline.args.agent.num_candidatess: no method of this suite "
                                        r"has it \(valid: an agent option of mfql, fql, rebrac;"):
        Plan(config, TASKS).check_train_args()
