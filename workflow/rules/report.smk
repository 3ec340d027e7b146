# Aggregation as the paper reports, figures, the toy experiment and the verification report.


rule collect_runs:
    input:
        PLAN.eval_files(),
    output:
        runs="results/tables/runs.csv",
        scores="results/tables/scores.csv",
    log:
        "logs/collect_runs.log",
    conda:
        "../envs/mfql.yaml"
    params:
        data_source=SUITE["data_source"],
        runs=PLAN.planned_runs(),
    script:
        "../scripts/collect_runs.py"


rule make_tables:
    input:
        scores="results/tables/scores.csv",
    output:
        **{f"{t}_{ext}": report(f"results/tables/{t}.{ext}", category="Tables", caption="../report/tables.rst")
           if ext == "md" else f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md", "tex")},
    log:
        "logs/make_tables.log",
    conda:
        "../envs/mfql.yaml"
    script:
        "../scripts/make_tables.py"


rule plot_curves:
    input:
        runs="results/tables/runs.csv",
        scores="results/tables/scores.csv",
    output:
        **{f"{f}_{ext}": report(f"results/figures/{f}.{ext}", category="Learning curves",
                                caption="../report/curves.rst") if ext == "png" else f"results/figures/{f}.{ext}"
           for f in ("curves_offline", "curves_env", "curves_o2o") for ext in ("png", "pdf")},
    log:
        "logs/plot_curves.log",
    conda:
        "../envs/mfql.yaml"
    script:
        "../scripts/plot_curves.py"


rule plot_aggregates:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report("results/figures/aggregates.png", category="Aggregates", caption="../report/aggregates.rst"),
        pdf="results/figures/aggregates.pdf",
        csv="results/tables/aggregates.csv",
    log:
        "logs/plot_aggregates.log",
    conda:
        "../envs/mfql.yaml"
    params:
        reps=config["bootstrap"]["reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/plot_aggregates.py"


rule run_toy:
    output:
        png=report("results/figures/toy/toy.png", category="Toy", caption="../report/toy.rst"),
        metrics="results/figures/toy/metrics.json",
        samples="results/figures/toy/samples.npy",
    log:
        "logs/run_toy.log",
    conda:
        "../envs/mfql.yaml"
    threads: SUITE["threads"]
    params:
        out_dir=lambda wc, output: Path(output.png).parent,
        args=[f"{k}={v}" for k, v in SUITE["toy"].items()],  # integers only (schema)
    shell:
        "python -m mfql.toy out_dir={params.out_dir:q} threads={threads} {params.args:q} > {log:q} 2>&1"


rule verify_results:
    input:
        scores="results/tables/scores.csv",
        expected=ROOT / "config/expected/paper_results.csv",
    output:
        md=report("results/verification/report.md", category="Verification", caption="../report/verification.rst"),
        csv="results/verification/report.csv",
        summary="results/verification/summary.json",
    log:
        "logs/verify_results.log",
    conda:
        "../envs/mfql.yaml"
    params:
        alpha=config["verify"]["alpha"],
    script:
        "../scripts/verify_results.py"


rule check_verification:
    # Separate from verify_results so that the report stays on disk when verify.strict fails the run.
    input:
        "results/verification/summary.json",
    output:
        "results/verification/check.txt",
    log:
        "logs/check_verification.log",
    conda:
        "../envs/mfql.yaml"
    params:
        strict=config["strict"],
    script:
        "../scripts/check_verification.py"


rule claims:
    # MFQL vs each baseline, paired per task and environment, with the paper's claims next to ours.
    input:
        scores="results/tables/scores.csv",
        expected=ROOT / "config/expected/paper_results.csv",
    output:
        md=report("results/verification/claims.md", category="Verification", caption="../report/claims.rst"),
        csv="results/verification/claims.csv",
        **{f"{f}_{ext}": report(f"results/figures/{f}.{ext}", category="Claims", caption="../report/claims.rst")
           if ext == "png" else f"results/figures/{f}.{ext}" for f in ("claims", "profiles") for ext in ("png", "pdf")},
    log:
        "logs/claims.log",
    conda:
        "../envs/mfql.yaml"
    params:
        reps=config["bootstrap"]["reps"],
        seed=config["bootstrap"]["seed"],
    script:
        "../scripts/claims.py"


rule measure_efficiency:
    # Every method's cost on the suite's device and model: updates/s, GFLOP, action latency, network calls,
    # parameters, peak memory (python -m mfql.bench's efficiency section, one process per method).
    output:
        EFFICIENCY_BENCH,
    log:
        "logs/measure_efficiency.log",
    conda:
        "../envs/mfql.yaml"
    benchmark:
        "benchmarks/measure_efficiency.tsv"
    threads: SUITE["threads"]
    resources:
        gpu=SUITE["gpu"],
        mem_mb=SUITE["mem_mb"],
        runtime=30,
        cpus_per_task=SUITE["threads"],
    params:
        model=SUITE["model"],
        device="cuda" if SUITE["gpu"] else "cpu",
    shell:
        "python -m mfql.bench sections='[efficiency]' efficiency_model={params.model:q} device={params.device:q} "
        "compile=false updates=20 act_repeats=50 threads={threads} out={output:q} > {log:q} 2>&1"


rule efficiency:
    # Each method's score per environment group beside its measured cost: the paper's efficiency claim.
    input:
        bench=EFFICIENCY_BENCH,
        scores="results/tables/scores.csv",
    output:
        csv="results/tables/efficiency.csv",
        md=report("results/tables/efficiency.md", category="Efficiency", caption="../report/efficiency.rst"),
        png=report("results/figures/efficiency.png", category="Efficiency", caption="../report/efficiency.rst"),
        pdf="results/figures/efficiency.pdf",
    log:
        "logs/efficiency.log",
    conda:
        "../envs/mfql.yaml"
    script:
        "../scripts/efficiency.py"
