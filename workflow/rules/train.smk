# Training: one job per task x seed, or per task x pack of seeds (`seeds_per_job`); each job is one
# `python -m mfql.train ...` command a user can copy.
# A job killed by preemption or its time limit resumes from results/.../_resume/ when retried.
# The job's declared output is final.pt alone: the run's other files (config.yaml, meta.json, train.csv,
# eval.csv) are written by the job as it goes and also stored inside final.pt, and `run_files` writes them
# back from there, so a deleted eval.csv is restored, never retrained.


if seeds_per_job("offline") == 1:

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

else:
    # Seeds packed per job (`seeds_per_job`): one process trains up to that many seeds of a task on one
    # GPU (python -m mfql.train seeds=[...]), each into its own results/offline/{task}/seed<n>/. Outputs are
    # update()-flagged: a job rerun for one missing seed keeps the others' final.pt, and mfql.train skips
    # finished seeds, so only the missing one trains.
    for pack, pack_tasks in offline_packs().items():

        rule:
            name:
                f"train_offline_seeds_{'_'.join(map(str, pack))}"
            input:
                dataset=lambda wc: checksum_file(wc.task),
                task_config=ROOT / "config/mfql/tasks/{task}.yaml",
            output:
                [update(f"results/offline/{{task}}/seed{seed}/final.pt") for seed in pack],
            wildcard_constraints:
                task="|".join(re.escape(t) for t in pack_tasks),
            log:
                f"logs/train_offline/{{task}}/seeds{'-'.join(map(str, pack))}.log",
            conda:
                "../envs/mfql.yaml"
            benchmark:
                f"benchmarks/train_offline/{{task}}/seeds{'-'.join(map(str, pack))}.tsv"
            threads: SUITE["threads"]
            resources:
                gpu=SUITE["gpu"],
                mem_mb=packed_mem_mb(len(pack)),
                # 8 packed seeds cost at most ~3x one seed's time (packing's measured aggregate gain): 4x.
                runtime=lambda wc, attempt, n=len(pack): SUITE["runtime"] * -(-n // 2) * attempt,
                cpus_per_task=SUITE["threads"],
            params:
                out_dir=lambda wc: f"results/offline/{wc.task}",
                data_dir=DATA,
                seeds=hydra_value(list(pack)),
                args=train_args("offline"),
            shell:
                "python -m mfql.train task={wildcards.task} seeds={params.seeds:q} out_dir={params.out_dir:q} "
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
