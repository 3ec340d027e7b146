# Training: one job per variant x task x seed, or per variant x task x pack of seeds (`seeds_per_job`);
# each job is one `python -m mfql.train ...` command a user can copy.
# A job killed by preemption or its time limit resumes from results/.../_resume/ when retried.
# The job's declared output is final.pt alone: the run's other files (config.yaml, meta.json, train.csv,
# eval.csv) are written by the job as it goes and also stored inside final.pt, and `run_files` writes them
# back from there, so a deleted eval.csv is restored, never retrained. final.pt is update()-flagged, so
# Snakemake never deletes a finished run before its job reruns (changed options, --forcerun): mfql.train then
# has nothing to do for the same run and stops with one line for another one. To retrain, remove the folder.


# Offline (train_offline) and offline-to-online (finetune_online: its own offline phase with the task's O2O
# hyperparameters, then one environment step and one update per step in the same job, as FQL and MFQL
# Table 2). With seeds_per_job > 1 one process trains that many seeds of a task on one GPU
# (python -m mfql.train seeds=[...], rules <name>_seeds_<seeds>), each into its own
# results/{setting}/{variant}/{task}/seed<n>/. A job rerun for one missing seed keeps the others' final.pt, and
# mfql.train skips finished seeds, so only the missing one trains.
# A job's host memory (mem_mb) comes from the planner's measured parts and its dataset's size (Plan.job_memory),
# evaluated again by Snakemake once the dataset is there.
for setting, name in TRAIN_RULES.items():
    if PLAN.seeds_per_job(setting) == 1:

        rule:
            name:
                name
            input:
                dataset=dataset_of(setting),
                task_config=ROOT / "config/mfql/tasks/{task}.yaml",
            output:
                update(f"results/{setting}/{{variant}}/{{task}}/seed{{seed}}/final.pt"),
            log:
                f"logs/{name}/{{variant}}/{{task}}/seed{{seed}}.log",
            conda:
                "../envs/mfql.yaml"
            benchmark:
                f"benchmarks/{name}/{{variant}}/{{task}}/seed{{seed}}.tsv"
            threads: SUITE["threads"]
            resources:
                gpu=SUITE["gpu"],
                mem_mb=lambda wc, input, setting=setting: PLAN.job_mem_mb(setting, wc.variant, wc.task, 1,
                                                                          dataset_mb(input.dataset)),
                runtime=lambda wc, attempt, setting=setting: PLAN.job_runtime(setting, 1, attempt, wc.task),
                cpus_per_task=SUITE["threads"],
            params:
                out_dir=lambda wc, setting=setting: run_dir(setting, wc.variant, wc.task, wc.seed),
                data_dir=DATA,
                args=lambda wc, setting=setting: PLAN.train_options(setting, wc.variant, wc.task),
            shell:
                "python -m mfql.train task={wildcards.task} seed={wildcards.seed} out_dir={params.out_dir:q} "
                "data_dir={params.data_dir:q} threads={threads} {params.args:q} > {log:q} 2>&1"

    else:
        for pack, pack_tasks in PLAN.packs(setting).items():
            seeds_name = "-".join(map(str, pack))

            rule:
                name:
                    f"{name}_seeds_{'_'.join(map(str, pack))}"
                input:
                    dataset=dataset_of(setting),
                    task_config=ROOT / "config/mfql/tasks/{task}.yaml",
                output:
                    [update(f"results/{setting}/{{variant}}/{{task}}/seed{seed}/final.pt") for seed in pack],
                wildcard_constraints:
                    task=task_pattern(pack_tasks),
                log:
                    f"logs/{name}/{{variant}}/{{task}}/seeds{seeds_name}.log",
                conda:
                    "../envs/mfql.yaml"
                benchmark:
                    f"benchmarks/{name}/{{variant}}/{{task}}/seeds{seeds_name}.tsv"
                threads: SUITE["threads"]
                resources:
                    gpu=SUITE["gpu"],
                    mem_mb=lambda wc, input, setting=setting, n=len(pack): PLAN.job_mem_mb(
                        setting, wc.variant, wc.task, n, dataset_mb(input.dataset)),
                    runtime=lambda wc, attempt, setting=setting, n=len(pack): PLAN.job_runtime(setting, n, attempt,
                                                                                      wc.task),
                    cpus_per_task=SUITE["threads"],
                params:
                    out_dir=lambda wc, setting=setting: f"results/{setting}/{wc.variant}/{wc.task}",
                    data_dir=DATA,
                    seeds=hydra_value(list(pack)),
                    args=lambda wc, setting=setting: PLAN.train_options(setting, wc.variant, wc.task),
                shell:
                    "python -m mfql.train task={wildcards.task} seeds={params.seeds:q} out_dir={params.out_dir:q} "
                    "data_dir={params.data_dir:q} threads={threads} {params.args:q} > {log:q} 2>&1"


rule run_files:
    # Cheap and local: the files of a finished run, written back from the copies inside its final.pt.
    input:
        "results/{setting}/{variant}/{task}/seed{seed}/final.pt",
    output:
        **{n.replace(".", "_"): f"results/{{setting}}/{{variant}}/{{task}}/seed{{seed}}/{n}" for n in RUN_LOG_FILES},
    log:
        "logs/run_files/{setting}/{variant}/{task}/seed{seed}.log",
    conda:
        "../envs/mfql.yaml"
    params:
        run_dir=lambda wc: run_dir(wc.setting, wc.variant, wc.task, wc.seed),
    shell:
        "python -m mfql.restore run_dir={params.run_dir:q} > {log:q} 2>&1"
