"""Merge the planned runs' eval.csv / final_eval.json into results/tables/{runs,scores}.csv (only the runs the
suite plans, each checked against its task, seed, options and checkpoint)."""
import sys

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (the snakemake object is injected)

from mfql.errors import ResultError  # noqa: E402
from mfql.files import atomic_write  # noqa: E402
from mfql.report.results import collect  # noqa: E402

try:
    runs, scores = collect(snakemake.params.runs, snakemake.params.data_source)  # noqa: F821
except ResultError as exc:
    sys.exit(f"error: {exc}")
for frame, path in ((runs, snakemake.output.runs), (scores, snakemake.output.scores)):  # noqa: F821
    atomic_write(path, lambda tmp, frame=frame: frame.to_csv(tmp, index=False))
