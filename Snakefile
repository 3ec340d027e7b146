# MeanFlow-QL reproduction: datasets -> offline training -> offline-to-online -> evaluation -> tables,
# figures -> verification. `snakemake --cores all` runs config/config.yaml's suite (quick by default).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


onstart:
    check_executor()  # the executor is known only once the run starts


report: "workflow/report/workflow.rst"


rule all:
    input:
        PLAN.final_targets(),
        PLAN.eval_files(),
        "results/verification/check.txt",
    default_target: True


localrules: all, run_files, fetch_ogbench, fetch_minari, collect_runs, make_tables, plot_curves, plot_aggregates, verify_results, check_verification, claims, efficiency


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/sweep.smk"


rule data:
    input:
        PLAN.dataset_files(),


rule runs:
    input:
        PLAN.eval_files(),


rule offline:
    input:
        PLAN.run_files("offline"),


rule o2o:
    input:
        PLAN.run_files("o2o"),


rule tables:
    input:
        [t for t in PLAN.final_targets() if t.startswith("results/tables/")],


rule figures:
    input:
        [t for t in PLAN.final_targets() if t.startswith("results/figures/")],


rule verify:
    input:
        "results/verification/report.md",
        "results/verification/claims.md",
        "results/verification/check.txt",
