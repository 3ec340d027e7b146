# Seeded final evaluation of each trained policy (same call, same numbers).


rule evaluate_policy:
    input:
        "results/{setting}/{task}/seed{seed}/final.pt",
    output:
        "results/{setting}/{task}/seed{seed}/final_eval.json",
    log:
        "logs/evaluate_policy/{setting}/{task}/seed{seed}.log",
    conda:
        "../envs/mfql.yaml"
    threads: SUITE["threads"]
    params:
        episodes=SUITE["eval_episodes_final"],
    shell:
        "OMP_NUM_THREADS={threads} python -m mfql.evaluate checkpoint={input} episodes={params.episodes} "
        "seed={wildcards.seed} > {output}.tmp 2> {log} && mv {output}.tmp {output}"
