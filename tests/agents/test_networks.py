import torch

from mfql.agents.networks import Critic, MFDiT, MLPActor, count_params


def test_paper_parameter_counts_match_official_model():
    # cube-single: obs 28, act 5 (issue / spec b.2); D4RL antmaze: 29 / 8 (spec b table).
    assert count_params(MFDiT(28, 5)) == 3_826_437
    assert count_params(Critic(28, 5)) == 1_619_970
    assert count_params(MFDiT(29, 8)) == 3_828_232
    assert count_params(Critic(29, 8)) == 1_624_066


def test_actor_outputs_exactly_zero_at_initialisation():
    torch.manual_seed(0)
    obs, a_t, t = torch.randn(16, 28), torch.randn(16, 5), torch.rand(16)
    for actor in (MFDiT(28, 5), MLPActor(28, 5)):
        assert torch.equal(actor(obs, a_t, t), torch.zeros(16, 5))


def test_single_token_attention_shortcut_equals_full_attention():
    torch.manual_seed(0)
    model = MFDiT(6, 3)
    attn = model.blocks[0].attn
    x = torch.randn(4, 1, 256)
    fast = attn(x)
    qkv = attn.qkv(x).reshape(4, 1, 3, 2, 128).permute(2, 0, 3, 1, 4)
    q, k, v = attn.q_norm(qkv[0]), attn.k_norm(qkv[1]), qkv[2]
    full = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(4, 1, 256)
    torch.testing.assert_close(fast, attn.proj(full))


def test_critic_heads_are_independent():
    torch.manual_seed(0)
    critic = Critic(4, 2, (32, 32))
    obs, act = torch.randn(8, 4), torch.randn(8, 2)
    q = critic(obs, act)
    assert q.shape == (2, 8)
    assert not torch.allclose(q[0], q[1])
    with torch.no_grad():
        critic.net[0].kernel[1].zero_()
    q2 = critic(obs, act)
    torch.testing.assert_close(q2[0], q[0])
    assert not torch.allclose(q2[1], q[1])


def test_one_shared_t_equals_t_per_row_with_gradients():
    """One-step actions pass t = [1] for the batch: the DiT conditions once and broadcasts. Outputs and
    every parameter's gradient equal those of t repeated per row (float64: only summation order differs)."""
    torch.manual_seed(0)
    for actor in (MFDiT(6, 3), MLPActor(6, 3)):
        actor = actor.double()
        for p in actor.parameters():  # away from the zero initialisation, so that every path carries signal
            torch.nn.init.normal_(p, std=0.1)
        obs, a_t = torch.randn(32, 6, dtype=torch.float64), torch.randn(32, 3, dtype=torch.float64)
        outputs, grads = [], []
        for t in (torch.ones(1, dtype=torch.float64), torch.ones(32, dtype=torch.float64)):
            out = actor(obs, a_t, t)
            outputs.append(out)
            # allow_unused: one token skips the q/k norms (test_single_token_attention_shortcut...)
            grads.append(torch.autograd.grad(out.pow(2).sum(), list(actor.parameters()), allow_unused=True))
        assert outputs[0].shape == (32, 3)
        torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-12, atol=1e-12)
        for shared, per_row in zip(*grads):
            assert (shared is None) == (per_row is None)
            if shared is not None:
                torch.testing.assert_close(shared, per_row, rtol=1e-10, atol=1e-12)
        assert all(float(g.abs().sum()) > 0 for g in grads[0] if g is not None)


def test_one_shared_t_saves_the_dits_conditioning_flops():
    """The paper DiT on the 1,280 rows of a best-of-5 Bellman target: 8.75 GFLOP with t per row, 5.06 with one
    shared t (the conditioning is 42 % of a row's work)."""
    from torch.utils.flop_counter import FlopCounterMode

    actor, obs, a_t = MFDiT(28, 5), torch.randn(1280, 28), torch.randn(1280, 5)
    flops = []
    for t in (torch.ones(1), torch.ones(1280)):
        with FlopCounterMode(display=False) as counter:
            actor(obs, a_t, t)
        flops.append(counter.get_total_flops())
    assert flops[0] < 0.6 * flops[1], flops
