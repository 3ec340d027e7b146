"""The update on a GPU (skipped without one; tools/gpu-check.sh runs these on a lent GPU)."""

import pytest
import torch

from mfql.run.profiling import HostReads
from tests.conftest import make_agent, metric_row, random_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def run(device, compile=False, model="small", steps=20):
    torch.backends.cuda.matmul.allow_tf32 = False  # compare full float32 arithmetic
    torch.manual_seed(0)  # networks are initialised on the CPU, then moved: the same start on every device
    agent = make_agent(6, 3, "agent.alpha_update_interval=4", model=model, steps=40, device=device,
                       compile=compile)
    rows = []
    for step in range(1, steps + 1):
        gen = torch.Generator().manual_seed(step)
        draws = {"times": torch.rand(32, generator=gen), "flow_noises": torch.randn(32, 3, generator=gen),
                 "target_noises": torch.randn(agent.target_candidates, 32, 3, generator=gen),
                 "actor_noises": torch.randn(32, 3, generator=gen)}
        batch = {k: v.to(device) for k, v in random_batch(32, seed=step).items()}
        info = agent.update(batch, step, {k: v.to(device) for k, v in draws.items()})
        rows.append(metric_row(info).cpu())
    return agent, torch.stack(rows)


@pytest.mark.parametrize("model", ["small", "paper"])
def test_cuda_update_equals_cpu_update(model):
    _, cpu = run("cpu", model=model)
    _, cuda = run("cuda", model=model)
    torch.testing.assert_close(cuda, cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model", ["small", "paper"])
def test_cuda_compiled_with_cuda_graphs_equals_eager(model):
    eager_agent, eager = run("cuda", model=model)
    compiled_agent, compiled = run("cuda", compile=True, model=model)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    for a, b in zip(eager_agent.critic.parameters(), compiled_agent.critic.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_cuda_update_never_waits_for_the_device():
    agent = make_agent(6, 3, model="paper", steps=4000, device="cuda")
    batch = {k: v.cuda() for k, v in random_batch(16).items()}
    agent.update(batch, 1)
    with HostReads() as reads:
        for step in (1999, 2000, 2001):
            agent.update(batch, step)
    assert reads.reads == []
