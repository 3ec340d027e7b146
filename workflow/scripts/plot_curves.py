"""Learning curves per task and per environment group, and offline-to-online curves."""
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")  # noqa: F821

import pandas as pd  # noqa: E402

from mfql.report.figures import curves  # noqa: E402

curves(pd.read_csv(snakemake.input.runs), pd.read_csv(snakemake.input.scores), Path("results/figures"))  # noqa: F821
