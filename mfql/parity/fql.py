"""FQL against seohongpark/fql at 719d044 (``agents/fql.py``): its networks, draws and losses, paired with
``mfql.agents.fql.FQL``."""

from __future__ import annotations

import numpy as np
import torch

from mfql.parity.core import Comparison, Pair, compare_losses, critic_outputs, encoder_pairs, mlp_pairs, same_draws

REPO, COMMIT = "seohongpark/fql", "719d044"
MODULE = "agents.fql"
FILES = {  # the files the check runs, SHA-256 at that commit
    "agents/fql.py": "234c313d3acb3ba3d5d2cf1a08feb8a9cda23d47577687ff1daa9b29d425ed1f",
    "utils/networks.py": "3f38e3d413d573597348e31f2abb5431f54bf89e96fc76781a9471c72d6062aa",
    "utils/flax_utils.py": "5b6a8e9a919bf57dae0c1454f327ded4235385f9d9dcd1e62263fe4fad9fd484",
    "utils/encoders.py": "c4cff610086e5369cb44a943a55667c1cf393694ac1035df807a280d67e04bd8",
}
MODELS = ("small", "paper")  # the official code's MLPs at either size
PARITIES = ("official",)  # FQL has no deliberate differences
PIXELS = True  # the pixel shape: each network behind its own impala_small encoder
OVERRIDES: list[str] = []
BUDGET = 1000  # training steps the agents are built for (FQL has no schedule)
INFO = {  # mfql's metric -> the official info key of the same quantity
    "critic/loss": "critic/critic_loss", "critic/q_mean": "critic/q_mean", "actor/loss": "actor/actor_loss",
    "actor/bc_loss": "actor/bc_flow_loss", "actor/distill_loss": "actor/distill_loss",
    "actor/q_loss": "actor/q_loss", "actor/q": "actor/q",
}


def official_agent(module, cfg, obs_dim: int, action_dim: int, seed: int):
    """The official agent built by its own ``create`` with mfql's hyperparameters (``cfg``: mfql's agent config)."""
    config = module.get_config()
    config.update(dict(actor_hidden_dims=tuple(cfg.actor_hidden_dims), value_hidden_dims=tuple(cfg.critic_hidden_dims),
                       actor_layer_norm=bool(cfg.actor_layer_norm), discount=float(cfg.discount), tau=float(cfg.tau),
                       q_agg=str(cfg.q_agg), alpha=float(cfg.alpha), flow_steps=int(cfg.flow_steps),
                       normalize_q_loss=bool(cfg.normalize_q_loss), lr=float(cfg.lr), encoder=cfg.get("encoder")))
    ex_obs, ex_actions = example_inputs(obs_dim, action_dim)
    return module.FQLAgent.create(seed, ex_obs, ex_actions, config)


def example_inputs(obs_dim, action_dim: int):
    """The official constructors' example batch: state vectors, or uint8 images (H, W, C)."""
    obs = np.zeros((1, *obs_dim), np.uint8) if isinstance(obs_dim, tuple) else np.zeros((1, obs_dim), np.float32)
    return obs, np.zeros((1, action_dim), np.float32)


def network_pairs(params, theirs: str, net_key: str, module, name: str, path: str, encoder_at: str | None = None):
    """An official network (``modules_<theirs>``: its ``net_key`` MLP, and with images its encoder, stored at
    ``encoder_at`` when the official code registers it elsewhere) and mfql's ``module`` (``Encoded`` with
    images: ``encoder`` and ``net``)."""
    top = f"modules_{theirs}"
    if not hasattr(module, "encoder"):
        return mlp_pairs(params[top][net_key], (top, net_key), module, name, path)
    inner = f"{path}.net" if path else "net"
    encoder = (f"modules_{encoder_at}",) if encoder_at else (top, "encoder")
    return (encoder_pairs(encoder, module.encoder, name, f"{path}.encoder" if path else "encoder")
            + mlp_pairs(params[top][net_key], (top, net_key), module.net, name, inner))


def pairs(params, agent) -> list[Pair]:
    out = []
    for name in ("critic", "target_critic"):
        out += network_pairs(params, name, "value_net", getattr(agent, name), name, "")
    # the BC flow's encoder is the official actor_bc_flow_encoder (one module, its parameters stored there)
    out += network_pairs(params, "actor_bc_flow", "mlp", agent.actor["bc_flow"], "actor", "bc_flow",
                         encoder_at="actor_bc_flow_encoder")
    out += network_pairs(params, "actor_onestep_flow", "mlp", agent.actor["onestep"], "actor", "onestep")
    return out


def align(draws: dict, agent) -> dict:
    """The draws are already in the check's dtype."""
    return draws


def queues(draws: dict, agent) -> dict:
    """The official update's draws in its order: the critic's next-action noise; the actor's flow x0, flow
    time and distillation noise; then one more noise for a logged metric only (``actor/mse``), served zeros."""
    n = {k: v.detach().cpu().numpy() for k, v in draws.items()}
    spare = np.zeros_like(n["distill_noises"])
    return {"normal": [n["next_noises"], n["flow_noises"], n["distill_noises"], spare], "uniform": [n["times"]]}


def prepare(agent, official, cmp: Comparison):
    """FQL's learning rate is a constant: nothing to align."""
    return lambda: None


agent_draws = same_draws  # every draw goes to mfql's agent too


def official_loss(official, batch, params, step):
    return official.total_loss(batch, params, rng=official.rng)


def official_update(official, batch, step):
    return official.update(batch)


def losses(cmp: Comparison, update: int, metrics: dict, carry, loss, info: dict) -> None:
    compare_losses(cmp, update, INFO, metrics, info, loss)


def after_update(cmp: Comparison, update: int, agent, ours: dict, official, theirs: dict) -> None:
    """FQL has no state beyond its networks and optimiser."""


def outputs(cmp: Comparison, update: int, official, agent, batch: dict, draws: dict, served, jnp) -> None:
    """Each network's output and the actions on the same inputs."""
    obs, actions = batch["observations"], batch["actions"]
    theirs_obs, theirs_actions = jnp.asarray(obs.numpy()), jnp.asarray(actions.numpy())
    noise, t = draws["distill_noises"], draws["times"]
    select = official.network.select
    critic_outputs(cmp, update, official, agent, obs, actions, jnp)
    with torch.no_grad():
        cmp.add(update, "outputs", "BC flow v(s, a, t)", agent.actor["bc_flow"](obs, actions, t),
                select("actor_bc_flow")(theirs_obs, theirs_actions, jnp.asarray(t.numpy())))
        cmp.add(update, "outputs", "one-step policy mu(s, z)", agent.one_step(obs, noise),
                select("actor_onestep_flow")(theirs_obs, jnp.asarray(noise.numpy())))
        cmp.add(update, "outputs", "BC flow's Euler actions (distillation target)", agent.flow_actions(obs, noise),
                official.compute_flow_actions(theirs_obs, jnp.asarray(noise.numpy())))
        served.serve(normal=[noise.numpy()])
        cmp.add(update, "actions", "action (evaluation)", agent.act(obs, noises=noise[None]),
                official.sample_actions(theirs_obs, seed=official.rng))
        # the Bellman target from the next observations, with the next actions' noise of this update
        next_obs, z = batch["next_observations"], draws["next_noises"]
        next_actions = agent.one_step(next_obs, z).clamp(-1.0, 1.0)
        next_qs = agent.target_critic(next_obs, next_actions)
        next_q = next_qs.min(0).values if agent.cfg.q_agg == "min" else next_qs.mean(0)
        ours = batch["rewards"] + agent.cfg.discount * batch["masks"] * next_q
        served.serve(normal=[z.numpy()])
        theirs_next = official.sample_actions(jnp.asarray(next_obs.numpy()), seed=official.rng)
        qs = select("target_critic")(jnp.asarray(next_obs.numpy()), actions=jnp.clip(theirs_next, -1, 1))
        q = qs.min(axis=0) if official.config["q_agg"] == "min" else qs.mean(axis=0)
        theirs = jnp.asarray(batch["rewards"].numpy()) + official.config["discount"] * jnp.asarray(
            batch["masks"].numpy()) * q
        cmp.add(update, "bellman", "Bellman target r + gamma m Q'(s', mu(s', z))", ours, theirs)
