"""MeanFlow-QL against HiccupRL/MeanFlowQL at 3fab100 (``agents/meanflowql.py``, ``utils/dit_jax.py``): its
networks, draws, losses, α controller and learning-rate schedule, paired with
``mfql.agents.meanflow.MeanFlowQL`` under ``parity=official``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mfql.parity.core import FLOAT32_EPS, Comparison, Pair, compare_losses, critic_outputs, encoder_pairs
from mfql.parity.fql import example_inputs, network_pairs

REPO, COMMIT = "HiccupRL/MeanFlowQL", "3fab100"
MODULE = "agents.meanflowql"
FILES = {  # the files the check runs, SHA-256 at that commit
    "agents/meanflowql.py": "50525c5ada2462ce47981390f89fefa5c71afad67891e61579a4e94ac0307b8c",
    "utils/dit_jax.py": "686ffbc68f135cca26ea4d79b28e2ac0889225036dea07cf597c734f802a5fa5",
    "utils/networks.py": "dca1e7aa4645fcaf343d73566cab0cd3854ff2da1b9326c553b86702c9ac9cf2",
    "utils/flax_utils.py": "fa4f68a9f12b9b983560ced7e45cd2a99ae761752d8fd5a6c2f6611a13a4d4f8",
    "utils/encoders.py": "c4cff610086e5369cb44a943a55667c1cf393694ac1035df807a280d67e04bd8",
}
MODELS = ("paper",)  # the official code's actor is the DiT only (mfql's small model has an MLP actor)
PARITIES = ("official", "corrected")
PIXELS = True  # the pixel shape: the critic and the actor each behind their own impala_small encoder
# A budget of 20 steps and an α event at every step: the first updates then cross the learning rate's
# warm-up (1 step), the α controller's warm-up (2 steps) and its events, as a long run does after 5 % / 10 %.
BUDGET = 20
OVERRIDES = ["agent.alpha_update_interval=1"]
INFO = {  # mfql's metric -> the official info key of the same quantity
    "critic/loss": "critic/critic_loss", "critic/q_mean": "critic/q_mean", "actor/bc_loss": "meanflow/mean_flow_loss",
    "actor/q_loss": "actor/q_loss", "actor/q": "actor/q", "actor/bound_loss": "actor/bound_loss",
}


@dataclass(frozen=True)
class Correction:
    """One deliberate difference of ``parity=corrected`` (docs/runs.md): the agent's settings that carry it
    (copied from a ``parity=corrected`` agent into a ``parity=official`` one), the first update of this
    check's budget at which it acts, and what it must change there: group -> name prefixes, nothing else."""
    name: str
    why: str
    settings: tuple[str, ...]
    update: int
    differs: dict[str, tuple[str, ...]]


ALPHA_EFFECT = {"alpha": ("alpha (this update's BC weight)", "alpha (carried)"),
                "losses": ("actor/loss", "total_loss"), "gradients": ("actor.",), "parameters": ("actor.",)}
CORRECTIONS = (
    # every candidate is the same action until the actor's first step (the DiT's output layer starts at
    # zero, as the official one's, and the first update's actor learning rate is 0): K matters from update 3
    Correction("Bellman-target candidates", "K // 2 (the code's intent; the official jit falls back to the full K): "
               "the critic's target changes, so its loss, gradients and step, and the target moved towards it",
               ("target_candidates",), 3, {"losses": ("critic/loss", "total_loss"), "gradients": ("critic.",),
                                           "parameters": ("critic.",), "targets": ("target_critic.",)}),
    Correction("critic learning rate", "1e-4 (paper Table 6; the official code hard-codes 3e-4): the critic's step "
               "changes, and the target moved towards it", ("critic_lr", "critic_opt.state.lr"), 1,
               {"parameters": ("critic.",), "targets": ("target_critic.",)}),
    Correction("target EMA", "towards the pre-update critic (as FQL; the official code moves it towards the "
               "updated one): only the target changes", ("ema_before_step",), 1, {"targets": ("target_critic.",)}),
    # at this check's budget (20 steps, an event every step) the official warm-up ends at step 2 and its
    # first adapting event (two losses recorded) is step 3, the fourth update
    Correction("α-controller warm-up", "20 % of the offline steps (the official comment; its code: 10 %): the "
               "event that adapts alpha first under the official warm-up does not, so this update's BC weight, "
               "the actor's loss, gradients and step change", ("alpha_ctl.warmup",), 4, ALPHA_EFFECT),
    Correction("α history average", "the last `valid` losses (the official code averages the first `valid` "
               "slots of a history written at its end, zeros until full): the first adapting event compares the "
               "loss with its real average, not 0, so this update's BC weight, the actor's loss, gradients and "
               "step change", ("alpha_ctl.official_window", "alpha_ctl.averaged"), 4, ALPHA_EFFECT),
)
OUTSIDE = {  # the corrections that are not part of an update, and the tests that hold them
    "observation statistics": "over the dataset, not the zero-padded buffer (tests/data/test_datasets.py)",
    "training loop": "steps 1..N, not 0..N with a first update at actor LR 0 (tests/agents/test_agent.py)",
}


def set_flags(budget: int) -> None:
    """The official constructor reads the run's budgets from absl flags (its main script defines them)."""
    from absl import flags

    values = {"offline_steps": (flags.DEFINE_integer, budget), "online_steps": (flags.DEFINE_integer, 0),
              "pretrain_factor": (flags.DEFINE_float, 0.0)}
    for name, (define, value) in values.items():
        if name not in flags.FLAGS:
            define(name, value, "set by mfql.parity")
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["mfql.parity"])
    for name, (_, value) in values.items():
        setattr(flags.FLAGS, name, value)


def official_agent(module, cfg, obs_dim: int, action_dim: int, seed: int):
    """The official agent built by its own ``create`` with mfql's hyperparameters (``cfg``: mfql's agent config)."""
    set_flags(BUDGET)
    config = module.get_config()
    values = dict(
        value_hidden_dims=tuple(cfg.critic_hidden_dims), lr=float(cfg.lr), lr_min_ratio=float(cfg.lr_min_ratio),
        actor_hidden_dims=int(cfg.actor_hidden_dim), actor_depth=int(cfg.actor_depth),
        actor_num_heads=int(cfg.actor_num_heads), discount=float(cfg.discount), tau=float(cfg.tau),
        alpha=float(cfg.alpha), time_steps=int(cfg.time_steps), adaptive_gamma=float(cfg.adaptive_gamma),
        adaptive_c=float(cfg.adaptive_c), bound_loss_weight=float(cfg.bound_loss_weight),
        num_candidates=int(cfg.num_candidates), use_dynamic_alpha=bool(cfg.dynamic_alpha),
        alpha_update_interval=int(cfg.alpha_update_interval),
        loss_multiplier_threshold=float(cfg.alpha_loss_threshold), alpha_increase_factor=float(cfg.alpha_increase),
        alpha_decrease_factor=float(cfg.alpha_decrease), loss_history_window_size=int(cfg.alpha_window),
        q_agg=str(cfg.q_agg), normalize_q_loss=bool(cfg.normalize_q_loss), sigma=float(cfg.sigma))
    for key, value in values.items():  # each in the official field's own type (ml_collections checks it)
        config[key] = value if isinstance(value, (str, tuple)) else type(config[key])(value)
    config["encoder"] = cfg.get("encoder")  # a placeholder field: None or the encoder's name
    ex_obs, ex_actions = example_inputs(obs_dim, action_dim)
    return module.MeanFlowQL_Agent.create(seed, ex_obs, ex_actions, config)


def prepare(agent, official, cmp: Comparison):
    """The official optimiser computes the actor's learning rate from optax's int32 step count, hence in
    float32 whatever the dtype; mfql's schedule computes it in float64. The check compares the two on every
    update within float32's rounding (group ``schedule``), then hands mfql's update the official value, so
    that a float64 check of everything else is not blurred by the schedule's float32 rounding. Returns the
    function that undoes this."""
    import jax.numpy as jnp

    from mfql.agents import meanflow as ours

    schedule, actor_lr = official.config["actor_lr_schedule"], ours.actor_lr

    def official_lr(update_count, lr, min_ratio, pretrain_steps, warmup_frac):
        theirs = float(schedule(jnp.asarray(int(update_count), dtype=jnp.int32)))
        cmp.add(int(update_count) + 1, "schedule", "actor learning rate (the official one is float32)",
                actor_lr(update_count, lr, min_ratio, pretrain_steps, warmup_frac), theirs, tol=FLOAT32_EPS)
        return torch.tensor(theirs, dtype=torch.float64)

    ours.actor_lr = official_lr
    return lambda: setattr(ours, "actor_lr", actor_lr)


def dit_pairs(depth: int, path: str) -> list[Pair]:
    """The official MFDiT_SIM's parameters, by flax name, and mfql's MFDiT's at ``path`` in the actor
    (docs/method.md, "Networks")."""
    top = ("modules_actor_bc_flow",)

    def dense(theirs: tuple[str, ...], ours: str) -> list[Pair]:
        return [Pair((*theirs, "kernel"), ("actor", f"{path}{ours}.weight"), lambda a: a.T),
                Pair((*theirs, "bias"), ("actor", f"{path}{ours}.bias"), lambda a: a)]

    def rms(theirs: tuple[str, ...], ours: str) -> Pair:
        return Pair((*theirs, "g"), ("actor", f"{path}{ours}.weight"), lambda a: a.reshape(-1))

    pairs = [*dense((*top, "FeatureEmbed_0", "Dense_0"), "feature_embed"),
             Pair((*top, "pos_embed"), ("actor", f"{path}pos_embed"), lambda a: a),
             *dense((*top, "t_embedder", "Dense_0"), "t_embedder.mlp.0"),
             *dense((*top, "t_embedder", "Dense_1"), "t_embedder.mlp.2")]
    for i in range(depth):
        block, ours = (*top, f"blocks_{i}"), f"blocks.{i}"
        attention = (*block, "Attention_0")
        pairs += [rms((*block, "RMSNorm_0"), f"{ours}.norm1"), rms((*block, "RMSNorm_1"), f"{ours}.norm2"),
                  *dense((*attention, "qkv"), f"{ours}.attn.qkv"),
                  rms((*attention, "RMSNorm_0"), f"{ours}.attn.q_norm"),
                  rms((*attention, "RMSNorm_1"), f"{ours}.attn.k_norm"),
                  *dense((*attention, "Dense_0"), f"{ours}.attn.proj"),
                  *dense((*block, "MlpBlock_0", "Dense_0"), f"{ours}.mlp.0"),
                  *dense((*block, "MlpBlock_0", "Dense_1"), f"{ours}.mlp.2"),
                  *dense((*block, "Dense_0"), f"{ours}.adaLN_modulation.1")]
    final = (*top, "FinalLayer_0")
    pairs += [rms((*final, "RMSNorm_0"), "final_layer.norm"),
              *dense((*final, "Dense_0"), "final_layer.adaLN_modulation.1"),
              *dense((*final, "Dense_1"), "final_layer.linear")]
    return pairs


def pairs(params, agent) -> list[Pair]:
    out = [pair for name in ("critic", "target_critic")
           for pair in network_pairs(params, name, "value_net", getattr(agent, name), name, "")]
    if not hasattr(agent.actor, "encoder"):
        return out + dit_pairs(agent.cfg.actor_depth, "")
    # the actor's encoder is the official actor_bc_flow_encoder (one module, its parameters stored there)
    return (out + encoder_pairs(("modules_actor_bc_flow_encoder",), agent.actor.encoder, "actor", "encoder")
            + dit_pairs(agent.cfg.actor_depth, "net."))


def align(draws: dict, agent) -> dict:
    """mfql draws grid times as float32 (``randint(...).float() / T``, the dtype it trains in); a float64
    check gives both sides the grid's float64 values instead (the official ``linspace(1/T, 1, T)``)."""
    steps = int(agent.cfg.time_steps)
    if steps > 1000 or draws["times"].dtype == torch.get_default_dtype():
        return draws
    index = torch.round(draws["times"].double() * steps).long() - 1
    grid = torch.linspace(1.0 / steps, 1.0, steps, dtype=torch.get_default_dtype())
    return {**draws, "times": grid[index]}


def queues(draws: dict, agent) -> dict:
    """The official update's draws in its order: the critic's K candidate noises (drawn per candidate key
    under jax.vmap); the MeanFlow loss's time (grid indices for T <= 1000, else U(0, 1)) and noise; the
    consistency loss's two times and noise (its weight is 0: served zeros); the actor's noise. The official
    noise is ``normal * sigma``: served mfql's noise / sigma."""
    n = {k: v.detach().cpu().numpy() for k, v in draws.items()}
    sigma, steps, batch = float(agent.cfg.sigma), int(agent.cfg.time_steps), n["times"].shape[0]
    unused = np.zeros(batch, dtype=np.int32)
    served = {"normal": [n["target_noises"] / sigma, n["flow_noises"] / sigma, np.zeros_like(n["flow_noises"]),
                         n["actor_noises"] / sigma]}
    if steps <= 1000:
        served["randint"] = [np.rint(n["times"] * steps).astype(np.int32) - 1, unused, unused]
    else:
        served.update(uniform=[n["times"].reshape(-1, 1)], randint=[unused, unused])
    return served


def agent_draws(draws: dict, agent) -> dict:
    """``agent``'s share of an official-parity agent's draws: with fewer Bellman-target candidates
    (``parity=corrected``'s K // 2), the first of the K the official code draws."""
    return {**draws, "target_noises": draws["target_noises"][:agent.target_candidates]}


def official_loss(official, batch, params, step):
    return official.total_loss(batch, params, official.rng, current_step=step)


def official_update(official, batch, step):
    return official.update(batch, current_step=step)


def losses(cmp: Comparison, update: int, metrics: dict, carry: dict, loss, info: dict) -> None:
    compare_losses(cmp, update, INFO, metrics, info, loss)
    # mfql's actor/loss is the actor's whole loss, its α-weighted MeanFlow term included
    cmp.add(update, "losses", "actor/loss", metrics["actor/loss"],
            info["actor/actor_loss"] + info["alpha_weight"] * info["meanflow/flow_loss"])
    cmp.add(update, "alpha", "alpha (this update's BC weight)", carry["alpha"].squeeze(), info["alpha_weight"])


def after_update(cmp: Comparison, update: int, agent, ours: dict, official, theirs: dict) -> None:
    """The α controller's state carried to the next update."""
    state = agent.alpha_ctl.state_dict()
    cmp.add(update, "alpha", "alpha (carried)", state["alpha"].squeeze(), official.current_alpha)
    cmp.add(update, "alpha", "MeanFlow-loss history", state["history"], official.loss_history)
    cmp.add(update, "alpha", "history slots filled", state["valid"].squeeze(), official.valid_count)


def outputs(cmp: Comparison, update: int, official, agent, batch: dict, draws: dict, served, jnp) -> None:
    """Each network's output, the one-step action, the best-of-K choice and the Bellman target."""
    obs, actions, t = batch["observations"], batch["actions"], draws["times"]
    theirs_obs, theirs_actions = jnp.asarray(obs.numpy()), jnp.asarray(actions.numpy())
    select, sigma = official.network.select, float(agent.cfg.sigma)
    critic_outputs(cmp, update, official, agent, obs, actions, jnp)
    with torch.no_grad():
        cmp.add(update, "outputs", "actor g(s, a_t, t)", agent.actor(obs, actions, t),
                select("actor_bc_flow")(theirs_obs, theirs_actions, jnp.asarray(t.numpy()).reshape(-1, 1)))
        z = draws["actor_noises"]
        cmp.add(update, "outputs", "one-step action g(s, e, 1)", agent.one_step(obs, z),
                select("actor_bc_flow")(theirs_obs, jnp.asarray(z.numpy()), jnp.ones((obs.shape[0], 1))))
        noises = draws["target_noises"]
        served.serve(normal=[noises.numpy() / sigma])
        cmp.add(update, "actions", "best-of-K action (evaluation)", agent.act(obs, noises=noises),
                official.sample_actions(theirs_obs, seed=official.rng))
        next_obs = batch["next_observations"]
        _, next_qs = agent.best_of_k(agent.normalize(next_obs), noises)
        next_q = {"mean": next_qs.mean(0), "min": next_qs.min(0).values, "max": next_qs.max(0).values}[
            agent.cfg.q_agg]
        ours = batch["rewards"] + agent.cfg.discount * batch["masks"] * next_q
        served.serve(normal=[noises.numpy() / sigma])
        theirs_next_obs = jnp.asarray(next_obs.numpy())
        chosen = official.sample_actions(theirs_next_obs, seed=official.rng)
        qs = select("target_critic")(theirs_next_obs, actions=chosen)
        q = {"mean": qs.mean(axis=0), "min": qs.min(axis=0), "max": qs.max(axis=0)}[official.config["q_agg"]]
        theirs = jnp.asarray(batch["rewards"].numpy()) + official.config["discount"] * jnp.asarray(
            batch["masks"].numpy()) * q
        cmp.add(update, "bellman", "Bellman target r + gamma m Q'(s', best-of-K)", ours, theirs)
