"""Methods that exist only for the tests: each module here registers one method (mfql.agents.register) with its
config file in method/<name>.yaml beside it. The conformance suite (tests/agents/test_methods.py) runs every
registered method, these included; a training subprocess gets them through ``MFQL_METHODS`` (``MODULES``)."""

from __future__ import annotations

import importlib
from pathlib import Path

MODULES = [f"{__name__}.{p.stem}" for p in sorted(Path(__file__).parent.glob("*.py"))
           if p.stem != "__init__" and not p.stem.startswith("test_")]
for module in MODULES:
    importlib.import_module(module)
