"""From run folders to the report: results tables, statistics, verification, figures, claims, α sweeps."""
