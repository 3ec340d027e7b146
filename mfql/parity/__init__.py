"""``python -m mfql.parity``: mfql's updates against the official JAX code's (docs/verification.md)."""
