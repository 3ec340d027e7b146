"""Seeds packed in one process: each seed's update equals its update alone."""


import pytest
import torch

from mfql.agents.packed import PackedUpdate
from tests.conftest import (
    assert_packed_weights_close,
    assert_same_weights,
    kill_and_resume,
    make_agent,
    metric_row,
    random_batch,
    read_csv,
    read_final,
    train_args,
)
from tests.conftest import train as quick_train

SEEDS = (3, 7)


def seeded_agent(seed, model, **kw):
    torch.manual_seed(seed)
    return make_agent(6, 3, "agent.alpha_update_interval=2", model=model, steps=40, **kw)


def single_run(seed, model, steps):
    agent, gen = seeded_agent(seed, model), torch.Generator().manual_seed(seed)
    rows = []
    for step in range(1, steps + 1):
        info = agent.update(random_batch(32, seed=100 * seed + step), step, generator=gen)
        rows.append(metric_row(info))
    return agent, torch.stack(rows)


@pytest.mark.slow
@pytest.mark.parametrize("model, compile", [("small", False), ("paper", False), ("small", True)])
def test_packed_update_equals_each_seed_alone(model, compile):
    """Eager vmap and the compiled vmapped graph, each against the plain eager single-seed update."""
    steps = 12 if model == "small" else 4
    agents = [seeded_agent(seed, model) for seed in SEEDS]
    packed = PackedUpdate(agents, compile=compile)
    generators = [torch.Generator().manual_seed(seed) for seed in SEEDS]
    rows = []
    for step in range(1, steps + 1):
        batches = [random_batch(32, seed=100 * seed + step) for seed in SEEDS]
        batch = {k: torch.stack([b[k] for b in batches]) for k in batches[0]}
        info = packed.update(batch, step, packed.draws(32, generators))
        rows.append(metric_row(info, dim=-1))  # [seeds, metrics]
    packed_rows = torch.stack(rows, dim=1)  # [seeds, steps, metrics]
    for i, seed in enumerate(SEEDS):
        alone, alone_rows = single_run(seed, model, steps)
        # vmap runs the seeds' matmuls as one batched matmul: float32 round-off differs, nothing else
        torch.testing.assert_close(packed_rows[i], alone_rows, rtol=1e-5, atol=1e-5)
        for name in ("actor", "critic", "target_critic"):
            for a, b in zip(getattr(alone, name).parameters(), getattr(agents[i], name).parameters()):
                # compiled: fused kernels reorder float ops too (test_update's compiled-vs-eager tolerance)
                torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 if compile else 1e-6)
        assert int(agents[i].update_count) == steps and int(agents[i].actor_opt.count) == steps
        torch.testing.assert_close(agents[i].alpha_ctl.history, alone.alpha_ctl.history)
    assert not torch.equal(packed_rows[0], packed_rows[1])  # the seeds really differ


def test_packed_agents_are_views_of_the_packed_storage():
    agents = [seeded_agent(seed, "small") for seed in SEEDS]
    packed = PackedUpdate(agents)
    first = next(agents[1].actor.parameters())
    assert first.data_ptr() == packed.state["actor"][next(iter(packed.state["actor"]))][1].data_ptr()
    with torch.no_grad():
        obs = torch.randn(4, 6)
        noises = torch.randn(5, 4, 3)
        alone = seeded_agent(SEEDS[1], "small")
        torch.testing.assert_close(agents[1].act(obs, noises), alone.act(obs, noises))


# --- python -m mfql.train seeds=[...] ---------------------------------------------------------------------

PACKED = ["env_max_steps=12", "eval_episodes=3", "eval_interval=20", "offline_steps=40"]


def train(out, data_dir, *extra, check=True):
    return quick_train(out, data_dir, *PACKED, *extra, check=check)


ONLINE = "online_steps=30"  # offline-to-online: each seed its own environment, episodes and online rows


@pytest.mark.slow
def test_packed_run_gives_each_seed_the_files_of_its_single_run(tmp_path, ogbench_dir):
    """Offline then online steps, environments in worker processes or not. eval.csv identical; final.pt
    within float32 round-off (vmap batches the seeds' matmuls); the same run key, so the single-seed command in
    a packed seed's folder has nothing left to do."""
    data = ogbench_dir.parent
    # the packed job steps its environments in 2 worker processes, the single runs in their own process
    train(tmp_path / "packed", data, "seeds=[0,1]", ONLINE, "env_workers=2")
    for seed in (0, 1):
        single = tmp_path / f"single{seed}"
        train(single, data, f"seed={seed}", ONLINE)
        packed = tmp_path / "packed" / f"seed{seed}"
        assert (packed / "eval.csv").read_text() == (single / "eval.csv").read_text()
        a, b = read_final(packed / "final.pt"), read_final(single / "final.pt")
        assert_packed_weights_close(a, b, updates=70)  # 40 offline, 30 online
        assert a["meta"]["run_key"] == b["meta"]["run_key"] and a["config"]["seed"] == seed
        online = [{k: v for k, v in row.items() if k.startswith("online/")} for row in read_csv(packed / "train.csv")]
        assert online == [{k: v for k, v in row.items() if k.startswith("online/")}
                          for row in read_csv(single / "train.csv")]
        assert float(online[-1]["online/episodes"]) == 2  # 30 online steps, episodes of 12
        rerun = train(packed, data, f"seed={seed}", ONLINE)
        assert "nothing to do" in rerun.stderr
    first = read_final(tmp_path / "packed" / "seed0" / "final.pt")["actor"]
    second = read_final(tmp_path / "packed" / "seed1" / "final.pt")["actor"]
    assert any(not torch.equal(first[k], second[k]) for k in first)


@pytest.mark.slow
def test_packed_run_resumes_after_sigkill_like_an_uninterrupted_one(tmp_path, ogbench_dir):
    """Killed at seeded random moments and while a seed's resume state is being written (then one seed's
    state is newer than the other's), each time rerun: the finished seeds equal an uninterrupted packed run.
    With online steps: states written mid-episode rebuild each seed's environment by replaying its actions."""
    data = ogbench_dir.parent
    args = ["seeds=[0,1]", "checkpoint_interval=5", "offline_steps=40", ONLINE]
    train(tmp_path / "ref", data, *args)
    out = tmp_path / "killed"
    # seed 1's state is written after seed 0's: a kill during its write leaves seed 0 one state ahead
    kill_and_resume(train_args(out, data, *PACKED, *args), out, random_kills=2, seed=1, delays=(1.0, 7.0),
                    resume_dir=out / "seed1" / "_resume")
    for seed in (0, 1):
        ref, done = tmp_path / "ref" / f"seed{seed}", out / f"seed{seed}"
        assert (done / "eval.csv").read_text() == (ref / "eval.csv").read_text()
        assert_same_weights(read_final(ref / "final.pt"), read_final(done / "final.pt"))
        assert not (done / "_resume").exists()
