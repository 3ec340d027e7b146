"""Writes update_golden_207380d.pt: 20 eager updates of the agent at commit 207380d (the update an independent
check found equal to the official JAX code), for tests/test_update.py. Run at that commit:

    git worktree add /tmp/ref 207380d && cd /tmp/ref && PYTHONPATH=. python /path/to/make_update_golden.py OUT

It uses that commit's API (``info["alpha"]`` and ``info["actor/lr"]`` were Python floats there).
"""

import sys

import torch

from tests.conftest import make_agent, random_batch

LOSSES = ("critic/loss", "flow/mfi_loss", "actor/loss", "total_loss", "actor/grad_norm", "critic/grad_norm")
out = {}
for model in ("small", "paper"):
    for parity in ("official", "corrected"):
        torch.manual_seed(0)
        agent = make_agent(6, 3, f"parity={parity}", "agent.alpha_update_interval=2", model=model, steps=40)
        rows = []
        for step in range(1, 21):
            info = agent.update(random_batch(32, seed=step), step)
            scalars = [torch.tensor(float(info[k]), dtype=torch.float64) for k in ("alpha", "actor/lr")]
            rows.append(torch.stack([info[k].double() for k in LOSSES] + scalars))
        modules = (("actor", agent.actor), ("critic", agent.critic), ("target", agent.target_critic))
        names = [f"{n}.{k}" for n, m in modules for k in m.state_dict()]
        norms = torch.stack([v.double().norm() for _, m in modules for v in m.state_dict().values()])
        out[f"{model}-{parity}"] = {"metrics": torch.stack(rows), "param_norms": norms, "names": names}
torch.save(out, sys.argv[1])
