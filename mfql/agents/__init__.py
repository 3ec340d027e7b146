"""The methods, by name: MeanFlow-QL (``mfql``) and its baselines Flow Q-learning (``fql``) and ReBRAC (``rebrac``).

A method is one module here and one config file, ``config/mfql/method/<name>.yaml`` (its ``agent:`` options
and network sizes). The rest of mfql asks the registered class what it needs (its label, its name in the
paper's tables, its first loop step, its ranges, ...) and never compares a method's name.

A method outside this package registers itself on import: a module named in ``MFQL_METHODS`` (comma-separated
module paths, imported here) calls :func:`register`, with ``config_root`` the folder that holds its
``method/<name>.yaml``. ``python -m mfql.train method=<name>`` then trains it like the built-in methods.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from mfql.agents.base import Agent
from mfql.agents.fql import FQL
from mfql.agents.meanflow import MeanFlowQL
from mfql.agents.rebrac import ReBRAC
from mfql.errors import ConfigError

METHODS: dict[str, type[Agent]] = {}
CONFIG_ROOTS: list[Path] = []  # folders with method/<name>.yaml beside config/mfql, for methods from elsewhere
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def register(name: str, method: type[Agent], config_root: str | Path | None = None) -> None:
    METHODS[name] = method
    if config_root is not None and Path(config_root) not in CONFIG_ROOTS:
        CONFIG_ROOTS.append(Path(config_root))


def make_agent(method: str, *args, **kwargs) -> Agent:
    """``METHODS[method](cfg.agent, obs_dim, action_dim, obs_mean, obs_std, pretrain_steps, device, compile)``."""
    return METHODS[method](*args, **kwargs)


def proposed() -> str:
    """The paper's method: what the claims and the α sweep are about."""
    return next(name for name, method in METHODS.items() if method.ROLE == "proposed")


def baselines() -> list[str]:
    return [name for name, method in METHODS.items() if method.ROLE == "baseline"]


def paper_variants() -> dict[str, str]:
    """{the method's name in the paper's tables (config/expected/paper_results.csv): the variant that reproduces
    it, the method as its paper ran it}."""
    return {method.PAPER_NAME: name for name, method in METHODS.items() if method.PAPER_NAME}


def load_plugins() -> None:
    """Import the modules named in ``MFQL_METHODS``, which register their methods (done when this package is
    imported; again by a process that sets the variable later, e.g. one forked from a parent without it)."""
    for module in filter(None, (m.strip() for m in os.environ.get("MFQL_METHODS", "").split(","))):
        if not MODULE_RE.match(module):
            raise ConfigError(f"MFQL_METHODS={os.environ['MFQL_METHODS']!r}: {module!r} is not a module path "
                              "(valid: comma-separated dotted module names, e.g. mypackage.mymethod)")
        importlib.import_module(module)


register("mfql", MeanFlowQL)
register("fql", FQL)
register("rebrac", ReBRAC)
load_plugins()
