"""Seeds packed in one process: S agents of one task updated together by one vmapped update.

Each seed keeps everything of its own (parameters, Adam state, alpha controller, target critic, update
count, batch indices and draws from its own generator); only the program and the dataset are shared. The
stacked tensors are the storage: every agent's parameters and states are rebound to views of its slice,
so ``act``, ``state_dict`` and checkpoints of one seed work as for a single agent.
"""

from __future__ import annotations

from functools import partial

import torch
from torch.utils._pytree import tree_leaves, tree_map

from mfql.agents.base import Agent, compile_update


def bind(agent: Agent, state: dict) -> None:
    """Point the agent's update tensors at ``state``'s (views of the packed storage)."""
    for key in agent.modules():
        for name, param in getattr(agent, key).named_parameters():
            param.data = state[key][name]
    for key in agent.optimizers():
        getattr(agent, key).state.update(state[key])
    if "alpha" in state:  # MeanFlow-QL's controller
        agent.alpha_ctl.alpha, agent.alpha_ctl.history, agent.alpha_ctl.valid = state["alpha"].values()
    agent.update_count = state["update_count"]


class PackedUpdate:
    def __init__(self, agents: list[Agent], compile: bool = False):
        self.agents = agents
        self.program = agents[0]  # same config and shapes for all: its code and constants run every seed
        self.program.grad_transform = True  # vmap composes with torch.func.grad, not with autograd.grad
        self.state = tree_map(lambda *xs: torch.stack(xs), *[agent.state() for agent in agents])
        for seed, agent in enumerate(agents):
            bind(agent, tree_map(lambda x, seed=seed: x[seed], self.state))
        # torch.vmap cannot batch the fused list (foreach) ops: one op per tensor instead.
        # The method's own program (not a compiled one of the program agent's): the packed one compiles whole.
        update = torch.vmap(partial(type(self.program).update_on_device, self.program, foreach=False),
                            in_dims=(0, 0, 0))
        device = self.program.device
        self.cuda_graphs = compile and device.type == "cuda"
        self.update_on_device = compile_update(update, device, [*tree_leaves(self.state), self.program.step]) \
            if compile else update

    def update(self, batches: dict[str, torch.Tensor], step: int, draws: dict[str, torch.Tensor]) -> dict:
        """One update of every seed: ``batches`` and ``draws`` carry a leading seed axis; metrics come back
        with one value per seed."""
        self.program.step.fill_(step)
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        return self.update_on_device(batches, draws, self.state)

    def draws(self, batch_size: int, generators: list[torch.Generator]) -> dict[str, torch.Tensor]:
        per_seed = [agent.draws(batch_size, gen) for agent, gen in zip(self.agents, generators)]
        return {key: torch.stack([d[key] for d in per_seed]) for key in per_seed[0]}
