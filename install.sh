#!/usr/bin/env bash
# Installs mfql and everything its pipeline and tests need into the current Python environment.
# torch is pinned first: 2.13.0 is the CPU wheel on a machine without a GPU (and PyPI's CUDA build elsewhere);
# every later requirement accepts it, so pip never pulls a second torch. The tests install nothing themselves.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[dev,report,pipeline,parity]"
# ogbench 1.1.0 (the version the paper used) beside, not instead of, 1.2.2: a test compares their semantics.
python3 -m pip install --quiet --no-deps --upgrade --target build/ogbench-1.1.0 "ogbench==1.1.0"
