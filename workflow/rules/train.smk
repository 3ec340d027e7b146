# Training: one job per task x seed; each job is one `python -m mfql.train ...` command a user can copy.
# A job killed by preemption or its time limit resumes from results/.../_resume/ when retried.
# The job's declared output is final.pt alone: the run's other files (config.yaml, meta.json, train.csv,
# eval.csv) are written by the job as it goes and also stored inside final.pt, and `run_files` writes them
# back from there, so a deleted eval.csv is restored, never retrained.


rule train_offline:
    input:
        dataset=lambda wc: checksum_file(wc.task),
        task_config=ROOT / "config/mfql/tasks/{task}.yaml",
    output:
        "results/offline/{task}/seed{seed}/final.pt",
    log:
        "logs/train_offline/{task}/seed{seed}.log",
    conda:
        "../envs/mfql.yaml"
    benchmark:
        "benchmarks/train_offline/{task}/seed{seed}.tsv"
    threads: SUITE["threads"]
    resources:
        gpu=SUITE["gpu"],
        mem_mb=SUITE["mem_mb"],
        runtime=lambda wc, attempt: SUITE["runtime"] * attempt,  # a retried job also gets more time
        cpus_per_task=SUITE["threads"],
    params:
        out_dir=lambda wc: run_dir("offline", wc.task, wc.seed),
        data_dir=DATA,
        args=train_args("offline"),
    shell:
        "python -m mfql.train task={wildcards.task} seed={wildcards.seed} out_dir={params.out_dir:q} "
        "data_dir={params.data_dir:q} threads={threads} {params.args:q} > {log:q} 2>&1"


rule finetune_online:
    # Offline-to-online as FQL and MFQL Table 2: its own offline phase with the task's O2O
    # hyperparameters, then one environment step and one update per step in the same job.
    input:
        dataset=lambda wc: checksum_file(wc.task),
        task_config=ROOT / "config/mfql/tasks/{task}.yaml",
    output:
        "results/o2o/{task}/seed{seed}/final.pt",
    log:
        "logs/finetune_online/{task}/seed{seed}.log",
    conda:
        "../envs/mfql.yaml"
    benchmark:
        "benchmarks/finetune_online/{task}/seed{seed}.tsv"
    threads: SUITE["threads"]
    resources:
        gpu=SUITE["gpu"],
        mem_mb=SUITE["mem_mb"],
        runtime=lambda wc, attempt: 2 * SUITE["runtime"] * attempt,
        cpus_per_task=SUITE["threads"],
    params:
        out_dir=lambda wc: run_dir("o2o", wc.task, wc.seed),
        data_dir=DATA,
        args=train_args("o2o"),
    shell:
        "python -m mfql.train task={wildcards.task} seed={wildcards.seed} out_dir={params.out_dir:q} "
        "data_dir={params.data_dir:q} threads={threads} {params.args:q} > {log:q} 2>&1"


rule run_files:
    # Cheap and local: the files of a finished run, written back from the copies inside its final.pt.
    input:
        "results/{setting}/{task}/seed{seed}/final.pt",
    output:
        **{n.replace(".", "_"): f"results/{{setting}}/{{task}}/seed{{seed}}/{n}" for n in RUN_LOG_FILES},
    log:
        "logs/run_files/{setting}/{task}/seed{seed}.log",
    run:
        restore_run_files(input[0], log[0])
