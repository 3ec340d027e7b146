# The alpha sweep's pick per environment (suites with alpha_sweep): results/sweep/alpha.yaml, which suites with
# alpha_source: swept read when planned.

if SWEEP:

    rule select_alpha:
        input:
            PLAN.eval_files(),
        output:
            OVERLAY,
        log:
            "logs/select_alpha.log",
        conda:
            "../envs/mfql.yaml"
        params:
            runs=PLAN.planned_runs(),
            data_source=SUITE["data_source"],
            factors=SWEEP["factors"],
            rule=SWEEP["rule"],
            budget=lambda wc: f"{SUITE['offline']['args'].get('offline_steps', 'full')} offline steps",
            tasks=sorted(TASKS),
        script:
            "../scripts/select_alpha.py"
