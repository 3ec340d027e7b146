"""Merge every run's eval.csv / final_eval.json into results/tables/{runs,scores}.csv."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (the snakemake object is injected)

from mfql.checkpoint import atomic_write  # noqa: E402
from mfql.results import collect  # noqa: E402

runs, scores = collect(Path("results"), snakemake.params.data_source)  # noqa: F821
for frame, path in ((runs, snakemake.output.runs), (scores, snakemake.output.scores)):  # noqa: F821
    atomic_write(path, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
