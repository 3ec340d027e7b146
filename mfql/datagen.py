"""Rebuild OGBench manipulation datasets with the scripted oracles shipped in the ogbench wheel.

    python -m mfql.datagen dataset=cube-single-play-v0 episodes=100 out_dir=data/ogbench seed=0

Writes ``<out_dir>/<dataset>.npz`` and ``<out_dir>/<dataset>-val.npz`` in OGBench's layout (observations,
actions, terminals, qpos, qvel and, for scene/puzzle, button_states; one row per step, terminals = 1 on
each episode's last row), so that ``ogbench.make_env_and_datasets(..., dataset_dir=<out_dir>)`` loads
them. ``play`` datasets use the plan oracles, ``noisy`` ones the Markov oracles, as OGBench's generator.
``visual-...`` datasets: the same oracles drive the environment from its privileged state; the observations
are the environment's own 64x64x3 uint8 frames, rendered offscreen with EGL.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from mfql.config import check_out_dir, compose, require_int, run_cli
from mfql.errors import ConfigError
from mfql.files import atomic_write
from mfql.log import Progress, setup_logging

log = logging.getLogger("mfql.datagen")
DATAGEN_SEED_MAX = 2**31 - 1  # the validation split's 2 * seed + 1 seeds NumPy's legacy RNG (< 2**32)
DATASET_RE = re.compile(
    r"^(visual-)?(cube-(single|double|triple|quadruple)|scene|puzzle-(3x3|4x4|4x5|4x6))-(play|noisy)-v0$")


def parse_dataset(name: str) -> tuple[str, str]:
    """cube-single-play-v0 -> ('cube-single-v0', 'play'); visual-scene-play-v0 -> ('visual-scene-v0', 'play')."""
    match = DATASET_RE.match(name)
    if not match:
        raise ConfigError(f"dataset={name!r} cannot be regenerated (valid: OGBench manipulation datasets "
                          "[visual-]<cube-single|cube-double|...|scene|puzzle-3x3|puzzle-4x4|...>-<play|noisy>-v0)")
    return f"{match.group(1) or ''}{match.group(2)}-v0", match.group(5)


def make_oracles(env, env_name: str, kind: str, noise: float, noise_smoothing: float, min_norm: float) -> dict:
    from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
    from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle
    from ogbench.manipspace.oracles.markov.drawer_markov import DrawerMarkovOracle
    from ogbench.manipspace.oracles.markov.window_markov import WindowMarkovOracle
    from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
    from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
    from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
    from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

    plan = dict(env=env, noise=noise, noise_smoothing=noise_smoothing)
    markov = dict(env=env, min_norm=min_norm)
    env_name = env_name.removeprefix("visual-")  # the oracles act on the privileged state in `info`
    if env_name.startswith("cube"):
        return {"cube": CubePlanOracle(**plan) if kind == "play" else CubeMarkovOracle(**markov)}
    if env_name.startswith("puzzle"):
        oracle = ButtonPlanOracle if kind == "play" else ButtonMarkovOracle
        return {"button": oracle(gripper_always_closed=True, **(plan if kind == "play" else markov))}
    if kind == "play":
        return {"cube": CubePlanOracle(**plan), "button": ButtonPlanOracle(**plan),
                "drawer": DrawerPlanOracle(**plan), "window": WindowPlanOracle(**plan)}
    return {"cube": CubeMarkovOracle(max_step=100, **markov), "button": ButtonMarkovOracle(**markov),
            "drawer": DrawerMarkovOracle(**markov), "window": WindowMarkovOracle(**markov)}


def collect(env_name: str, kind: str, episodes: int, episode_steps: int, seed: int, noise: float,
            noise_smoothing: float, min_norm: float, desc: str) -> dict[str, np.ndarray]:
    """Roll out the oracles; the oracles draw from NumPy's global RNG, the env from its own seeded RNG."""
    import gymnasium
    import ogbench.manipspace  # noqa: F401  (registers the environments)

    np.random.seed(seed)
    env = gymnasium.make(env_name, terminate_at_goal=False, mode="data_collection",
                         max_episode_steps=episode_steps + 1)
    oracles = make_oracles(env, env_name, kind, noise, noise_smoothing, min_norm)
    keys = ["observations", "actions", "terminals", "qpos", "qvel"]
    has_buttons = hasattr(env.unwrapped, "_cur_button_states")
    if has_buttons:
        keys.append("button_states")
    out: dict[str, list] = {k: [] for k in keys}
    bar = Progress(None, episodes * (episode_steps + 1), desc, logger=log)
    for episode in range(episodes):
        ob, info = env.reset(seed=int(np.random.SeedSequence([seed, episode]).generate_state(1)[0]))
        agent = oracles[info["privileged/target_task"]]
        agent.reset(ob, info)
        if kind == "noisy":
            scale = np.random.uniform(0, noise)
        done = False
        while not done:
            action = np.asarray(agent.select_action(ob, info), dtype=np.float64)
            if kind == "noisy":
                action = action + np.random.normal(0, [scale, scale, scale, scale * 3, scale * 10], action.shape)
            action = np.clip(action, -1, 1)
            next_ob, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            if agent.done and kind == "play":
                agent_ob, agent_info = env.unwrapped.set_new_target()
                agent = oracles[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)
            out["observations"].append(ob)
            out["actions"].append(action)
            out["terminals"].append(done)
            out["qpos"].append(info["prev_qpos"])
            out["qvel"].append(info["prev_qvel"])
            if has_buttons:
                out["button_states"].append(info["prev_button_states"])
            ob = next_ob
            bar.update()
    bar.close()
    env.close()
    dtypes = {"terminals": np.float32, "button_states": np.int64,
              "observations": np.uint8 if env_name.startswith("visual-") else np.float32}
    return {k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in out.items()}


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_write(path, write)


def main(argv: list[str]) -> None:
    cfg = compose("datagen", argv)
    env_name, kind = parse_dataset(cfg.dataset)
    require_int(cfg, "episodes", 1)
    require_int(cfg, "episode_steps", 1)
    require_int(cfg, "val_episodes", 1, nullable=True)
    if not (isinstance(cfg.seed, int) and not isinstance(cfg.seed, bool) and 0 <= cfg.seed <= DATAGEN_SEED_MAX):
        raise ConfigError(f"seed={cfg.seed!r} is not valid (valid: an integer in [0, {DATAGEN_SEED_MAX}]; the "
                          "validation split uses 2 * seed + 1, a NumPy seed)")
    for key in ("noise", "noise_smoothing", "min_norm"):
        if not 0 <= cfg[key] <= 1:
            raise ConfigError(f"{key}={cfg[key]!r} is not valid (valid: a number in [0, 1])")
    out_dir = check_out_dir("out_dir", cfg.out_dir)
    val_episodes = cfg.val_episodes if cfg.val_episodes is not None else max(1, cfg.episodes // 10)
    common = dict(env_name=env_name, kind=kind, episode_steps=cfg.episode_steps, noise=cfg.noise,
                  noise_smoothing=cfg.noise_smoothing, min_norm=cfg.min_norm)
    # Validation episodes come from a different seed stream so they never repeat training episodes.
    splits = {cfg.dataset: (cfg.episodes, cfg.seed * 2), f"{cfg.dataset}-val": (val_episodes, cfg.seed * 2 + 1)}
    for name, (episodes, seed) in splits.items():
        arrays = collect(episodes=episodes, seed=seed, desc=name, **common)
        save_npz(out_dir / f"{name}.npz", arrays)
        log.info("wrote %s (%d rows)", out_dir / f"{name}.npz", len(arrays["observations"]))


if __name__ == "__main__":
    setup_logging()
    run_cli(main, "datagen")
