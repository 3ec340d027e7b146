"""IQM and mean with 95 % stratified-bootstrap confidence intervals."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from mfql.files import atomic_write  # noqa: E402
from mfql.report.figures import aggregates  # noqa: E402

sm = snakemake  # noqa: F821
table = aggregates(pd.read_csv(sm.input.scores), Path(sm.output.png).with_suffix(""), sm.params.reps, sm.params.seed)
atomic_write(sm.output.csv, lambda tmp: table.to_csv(tmp, index=False))
