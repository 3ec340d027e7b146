# Datasets: downloaded (login node: local rules with retries) or regenerated with OGBench's oracles.


rule fetch_ogbench:
    output:
        train=f"{DATA}/ogbench/{{dataset}}.npz",
        val=f"{DATA}/ogbench/{{dataset}}-val.npz",
        checksums=f"{DATA}/checksums/{{dataset}}.json",
    log:
        "logs/fetch_ogbench/{dataset}.log",
    conda:
        "../envs/mfql.yaml"
    params:
        data_dir=lambda wc, output: Path(output.checksums).parent.parent,
        ogbench_dir=lambda wc, output: Path(output.train).parent,
        source=SUITE["data_source"],
        episodes=SUITE.get("datagen", {}).get("episodes", 1000),
        steps=SUITE.get("datagen", {}).get("episode_steps", 1000),
    retries: 3
    shell:
        """
        if [ {params.source:q} = regenerate ]; then
            python -m mfql.datagen dataset={wildcards.dataset} episodes={params.episodes} \
                episode_steps={params.steps} out_dir={params.ogbench_dir:q} seed=0 > {log:q} 2>&1
            python -m mfql.fetch dataset={wildcards.dataset} data_dir={params.data_dir:q} checksum_only=true >> {log:q} 2>&1
        else
            python -m mfql.fetch dataset={wildcards.dataset} data_dir={params.data_dir:q} > {log:q} 2>&1
        fi
        """


rule fetch_minari:
    output:
        data=directory(f"{DATA}/minari/D4RL/{{env}}/{{name}}"),
        checksums=f"{DATA}/checksums/D4RL__{{env}}__{{name}}.json",
    log:
        "logs/fetch_minari/{env}/{name}.log",
    conda:
        "../envs/mfql.yaml"
    params:
        data_dir=lambda wc, output: Path(output.checksums).parent.parent,
    retries: 3
    shell:
        "python -m mfql.fetch dataset=D4RL/{wildcards.env}/{wildcards.name} data_dir={params.data_dir:q} > {log:q} 2>&1"
