# Seeded final evaluation of each trained policy (same call, same numbers).


rule evaluate_policy:
    input:
        "results/{setting}/{variant}/{task}/seed{seed}/final.pt",
    output:
        "results/{setting}/{variant}/{task}/seed{seed}/final_eval.json",
    log:
        "logs/evaluate_policy/{setting}/{variant}/{task}/seed{seed}.log",
    conda:
        "../envs/mfql.yaml"
    threads: SUITE["threads"]
    resources:
        mem_mb=lambda wc: PLAN.evaluation_mem_mb(wc.task),
        cpus_per_task=SUITE["threads"],
    params:
        episodes=SUITE["eval_episodes_final"],
    shell:
        "python -m mfql.evaluate checkpoint={input:q} episodes={params.episodes} seed={wildcards.seed} "
        "threads={threads} out={output:q} > {log:q} 2>&1"
