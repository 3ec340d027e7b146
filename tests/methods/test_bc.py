"""The test method's own behaviour: its target policy moves every second update only, by tau."""

import torch

from tests.conftest import make_agent, random_batch


def test_the_target_policy_moves_every_second_update_by_tau():
    torch.manual_seed(0)
    agent = make_agent(6, 3, method="bc")
    moved = []
    for step in range(1, 5):
        before = [p.clone() for p in agent.target_actor.parameters()]
        online_before = [p.clone() for p in agent.actor.parameters()]
        agent.update(random_batch(32, seed=step), step)
        online = list(agent.actor.parameters())
        changed = any(not torch.equal(a, b) for a, b in zip(before, agent.target_actor.parameters()))
        moved.append(changed)
        if changed:
            expected = [t + 0.05 * (o - t) for t, o in zip(before, online)]
            for e, t in zip(expected, agent.target_actor.parameters()):
                torch.testing.assert_close(t, e)
        assert any(not torch.equal(a, b) for a, b in zip(online_before, online))
    assert moved == [False, True, False, True]
