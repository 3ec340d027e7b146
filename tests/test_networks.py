import torch

from mfql.networks import Critic, MFDiT, MLPActor, count_params


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
