"""The methods, side by side: MeanFlow-QL (``mfql``) and its baseline Flow Q-learning (``fql``)."""

from __future__ import annotations

from mfql.agents.base import Agent
from mfql.agents.fql import FQL
from mfql.agents.mfql import MeanFlowQL

METHODS: dict[str, type[Agent]] = {"mfql": MeanFlowQL, "fql": FQL}


def make_agent(method: str, *args, **kwargs) -> Agent:
    """``METHODS[method](cfg.agent, obs_dim, action_dim, obs_mean, obs_std, pretrain_steps, device, compile)``."""
    return METHODS[method](*args, **kwargs)
