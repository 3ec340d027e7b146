# Training: one job per task x seed; each job is one `python -m mfql.train ...` command a user can copy.
# A job killed by preemption or its time limit resumes from results/.../_resume/ when retried.

RUN_OUTPUTS = ["final.pt", "eval.csv", "train.csv", "config.yaml", "meta.json"]


rule train_offline:
    input:
        dataset=lambda wc: checksum_file(wc.task),
        task_config=ROOT / "config/mfql/tasks/{task}.yaml",
    output:
        **{n.replace(".", "_"): f"results/offline/{{task}}/seed{{seed}}/{n}" for n in RUN_OUTPUTS},
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
        data_dir=DATA,
        args=train_args("offline"),
    shell:
        "OMP_NUM_THREADS={threads} python -m mfql.train task={wildcards.task} seed={wildcards.seed} "
        "out_dir=results/offline/{wildcards.task}/seed{wildcards.seed} data_dir={params.data_dir} {params.args} > {log} 2>&1"


rule finetune_online:
    # Offline-to-online as FQL and MFQL Table 2: its own offline phase with the task's O2O
    # hyperparameters, then one environment step and one update per step in the same job.
    input:
        dataset=lambda wc: checksum_file(wc.task),
        task_config=ROOT / "config/mfql/tasks/{task}.yaml",
    output:
        **{n.replace(".", "_"): f"results/o2o/{{task}}/seed{{seed}}/{n}" for n in RUN_OUTPUTS},
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
        data_dir=DATA,
        args=train_args("o2o"),
    shell:
        "OMP_NUM_THREADS={threads} python -m mfql.train task={wildcards.task} seed={wildcards.seed} "
        "out_dir=results/o2o/{wildcards.task}/seed{wildcards.seed} data_dir={params.data_dir} {params.args} > {log} 2>&1"
