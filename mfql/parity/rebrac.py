"""ReBRAC against seohongpark/fql at 719d044 (``agents/rebrac.py``): its networks, draw and losses, paired
with ``mfql.agents.rebrac.ReBRAC``."""

from __future__ import annotations

import torch
from torch import nn

from mfql.parity.core import Comparison, Pair, compare_losses, critic_outputs, encoder_pairs, mlp_pairs, same_draws
from mfql.parity.fql import COMMIT, REPO, example_inputs, network_pairs  # noqa: F401  (FQL's repository holds it)

MODULE = "agents.rebrac"
FILES = {  # the files the check runs, SHA-256 at that commit
    "agents/rebrac.py": "eb8ea77b113b2dfbcb0c61cc40c2f60f3bb2765165ae2bee0fa94de6b8916987",
    "utils/networks.py": "3f38e3d413d573597348e31f2abb5431f54bf89e96fc76781a9471c72d6062aa",
    "utils/flax_utils.py": "5b6a8e9a919bf57dae0c1454f327ded4235385f9d9dcd1e62263fe4fad9fd484",
    "utils/encoders.py": "c4cff610086e5369cb44a943a55667c1cf393694ac1035df807a280d67e04bd8",
}
MODELS = ("small", "paper")
PARITIES = ("official",)
PIXELS = True  # the pixel shape: each network behind its own impala_small encoder
OVERRIDES: list[str] = []
BUDGET = 1000
INFO = {  # mfql's metric -> the official info key (the actor's only on full updates)
    "critic/loss": "critic/critic_loss", "critic/q_mean": "critic/q_mean", "critic/q_max": "critic/q_max",
    "critic/q_min": "critic/q_min", "actor/loss": "actor/total_loss", "actor/q_loss": "actor/actor_loss",
    "actor/bc_loss": "actor/mse",
}


def official_agent(module, cfg, obs_dim: int, action_dim: int, seed: int):
    config = module.get_config()
    config.update(dict(actor_hidden_dims=tuple(cfg.actor_hidden_dims), value_hidden_dims=tuple(cfg.critic_hidden_dims),
                       actor_layer_norm=bool(cfg.actor_layer_norm), discount=float(cfg.discount), tau=float(cfg.tau),
                       actor_fc_scale=float(cfg.actor_fc_scale), alpha_actor=float(cfg.alpha_actor),
                       alpha_critic=float(cfg.alpha_critic), actor_freq=int(cfg.actor_freq),
                       actor_noise=float(cfg.actor_noise), actor_noise_clip=float(cfg.actor_noise_clip),
                       lr=float(cfg.lr), encoder=cfg.get("encoder")))
    ex_obs, ex_actions = example_inputs(obs_dim, action_dim)
    return module.ReBRACAgent.create(seed, ex_obs, ex_actions, config)


def actor_pairs(params, name: str, actor) -> list[Pair]:
    """FQL's ``Actor``: ``actor_net`` (an MLP, activated to its end) then ``mean_net``, with images behind its
    ``encoder``; mfql's TanhActor: one Sequential ending in the mean layer (``Encoded`` with images)."""
    top, pairs, path = f"modules_{name}", [], "net"
    if hasattr(actor, "encoder"):
        pairs += encoder_pairs((top, "encoder"), actor.encoder, name, "encoder")
        actor, path = actor.net, "net.net"
    layers = list(actor.net)
    pairs += mlp_pairs(params[top]["actor_net"], (top, "actor_net"), nn.Sequential(*layers[:-1]), name, path)
    last = f"{path}.{len(layers) - 1}"
    return pairs + [Pair((top, "mean_net", "kernel"), (name, f"{last}.weight"), lambda a: a.T),
                    Pair((top, "mean_net", "bias"), (name, f"{last}.bias"), lambda a: a)]


def pairs(params, agent) -> list[Pair]:
    out = [pair for name in ("critic", "target_critic")
           for pair in network_pairs(params, name, "value_net", getattr(agent, name), name, "")]
    return out + actor_pairs(params, "actor", agent.actor) + actor_pairs(params, "target_actor", agent.target_actor)


def align(draws: dict, agent) -> dict:
    """The draws are already in the check's dtype."""
    return draws


def queues(draws: dict, agent) -> dict:
    """The official update's one draw: the target policy's smoothing noise, N(0, 1) before scaling."""
    return {"normal": [draws["target_noises"].detach().cpu().numpy()]}


def prepare(agent, official, cmp: Comparison):
    """ReBRAC's learning rate is a constant: nothing to align."""
    return lambda: None


def full_update(official, step: int) -> bool:
    return step % official.config["actor_freq"] == 0


agent_draws = same_draws  # every draw goes to mfql's agent too


def official_loss(official, batch, params, step):
    return official.total_loss(batch, params, full_update(official, step), rng=official.rng)


def official_update(official, batch, step):
    return official.update(batch, full_update=full_update(official, step))


def losses(cmp: Comparison, update: int, metrics: dict, carry, loss, info: dict) -> None:
    compare_losses(cmp, update, INFO, metrics, info, loss)  # the actor's values: on full updates only


def after_update(cmp: Comparison, update: int, agent, ours: dict, official, theirs: dict) -> None:
    """ReBRAC has no state beyond its networks and optimiser."""


def outputs(cmp: Comparison, update: int, official, agent, batch: dict, draws: dict, served, jnp) -> None:
    """Each network's output, the evaluation action and the Bellman target."""
    obs, actions = batch["observations"], batch["actions"]
    theirs_obs, select = jnp.asarray(obs.numpy()), official.network.select
    critic_outputs(cmp, update, official, agent, obs, actions, jnp)
    with torch.no_grad():
        cmp.add(update, "outputs", "actor tanh(mean(s))", agent.actor(obs), select("actor")(theirs_obs).mode())
        cmp.add(update, "outputs", "target actor tanh(mean(s))", agent.target_actor(obs),
                select("target_actor")(theirs_obs).mode())
        served.serve(normal=[draws["target_noises"].numpy()])
        cmp.add(update, "actions", "action (evaluation, no noise)", agent.act(obs),
                official.sample_actions(theirs_obs, seed=official.rng, temperature=0.0))
        next_obs, z = batch["next_observations"], draws["target_noises"]
        next_actions = (agent.target_actor(next_obs) + agent.smoothing(z)).clamp(-1.0, 1.0)
        next_q = agent.target_critic(next_obs, next_actions).min(0).values
        mse = (next_actions - batch["next_actions"]).pow(2).sum(-1)
        ours = batch["rewards"] + agent.cfg.discount * batch["masks"] * (next_q - agent.cfg.alpha_critic * mse)
        cfg, theirs_next_obs = official.config, jnp.asarray(next_obs.numpy())
        noise = jnp.clip(jnp.asarray(z.numpy()) * cfg["actor_noise"], -cfg["actor_noise_clip"], cfg["actor_noise_clip"])
        theirs_next = jnp.clip(select("target_actor")(theirs_next_obs).mode() + noise, -1, 1)
        q = select("target_critic")(theirs_next_obs, actions=theirs_next).min(axis=0)
        mse = jnp.square(theirs_next - jnp.asarray(batch["next_actions"].numpy())).sum(axis=-1)
        theirs = jnp.asarray(batch["rewards"].numpy()) + cfg["discount"] * jnp.asarray(batch["masks"].numpy()) * (
            q - cfg["alpha_critic"] * mse)
        cmp.add(update, "bellman", "Bellman target r + gamma m (min Q'(s', a') - alpha_critic |a' - a'_data|^2)",
                ours, theirs)
