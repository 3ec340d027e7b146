"""D4RL's evaluation protocol against the evaluation environments Minari records, one family at a time
(mfql/run/protocol.py; the specs below are built as Minari's generation scripts and dataset pages record them)."""

import dataclasses

import gymnasium as gym
import gymnasium_robotics
import numpy as np
import pandas as pd
import pytest

from mfql.report.verify import not_comparable_reasons
from mfql.run.protocol import d4rl_score, make_d4rl_env, spec_differences

gym.register_envs(gymnasium_robotics)

CONTINUING = "the episode runs on past the goal (continuing_task), D4RL's ends there"
RADIUS = "goal radius 0.45, D4RL's 0.5"
PEN_DROP = "the episode runs on after the pen drops, D4RL's ends there"
HAND_SIGN = "the hand-to-object reward term has the opposite sign of D4RL's (gymnasium-robotics PR 220)"


class Recorded:
    """A Minari dataset's ``recover_environment`` over a recorded spec: minari makes ``gym.make(spec, **kwargs)``."""

    def __init__(self, spec):
        self.spec = spec

    def recover_environment(self, eval_env=False, **kwargs):
        return gym.make(self.spec, **kwargs)


def antmaze_spec(env_id: str):
    """Minari's antmaze evaluation spec: the data env's (continuing_task=True, reset_target=False;
    minari-dataset-generation-scripts, scripts/D4RL/antmaze/create_antmaze_dataset.py) with its own maze."""
    spec = gym.spec(env_id)
    return dataclasses.replace(spec, kwargs={**spec.kwargs, "continuing_task": True, "reset_target": False})


def adroit_spec(env_id: str, steps: int):
    """Minari's Adroit datasets record the data env, and no separate evaluation env (minari.farama.org dataset
    pages: pen 100 steps, door/hammer/relocate 200)."""
    return dataclasses.replace(gym.spec(env_id), max_episode_steps=steps)


@pytest.mark.parametrize("task, env_id, steps", [
    ("antmaze-umaze-v2", "AntMaze_UMaze-v4", 700),
    ("antmaze-medium-diverse-v2", "AntMaze_Medium_Diverse_GR-v4", 1000),
    ("antmaze-large-play-v2", "AntMaze_Large-v4", 1000),
])
def test_antmaze_ends_at_d4rls_goal_radius(task, env_id, steps):
    recorded = Recorded(antmaze_spec(env_id))
    assert spec_differences(task, recorded.spec) == [CONTINUING, RADIUS]
    d4rl, raw = make_d4rl_env(task, recorded), recorded.recover_environment(eval_env=True)
    assert d4rl.spec.max_episode_steps == raw.spec.max_episode_steps == steps
    for env, reward, ends in ((d4rl, 1.0, True), (raw, 0.0, False)):
        obs, _ = env.reset(seed=0)
        ant = env.unwrapped.ant_env
        qpos = ant.data.qpos.copy()
        qpos[:2] = obs["desired_goal"] + np.array([0.47, 0.0])  # inside D4RL's 0.5, outside gymnasium's 0.45
        ant.set_state(qpos, np.zeros_like(ant.data.qvel))
        _, r, terminated, _, info = env.step(np.zeros(8))
        assert (r, terminated, bool(info["success"])) == (reward, ends, ends)
    assert d4rl_score(task, 1.0) == 100.0  # D4RL's antmaze reference scores 0 and 1: the score is the success


def test_pen_ends_when_the_pen_drops_and_runs_d4rls_100_steps():
    assert spec_differences("pen-cloned-v1", adroit_spec("AdroitHandPen-v1", 100)) == [PEN_DROP]
    assert spec_differences("pen-cloned-v1", gym.spec("AdroitHandPen-v1")) == [
        "episodes of 200 steps, D4RL's 100", PEN_DROP]  # gymnasium-robotics' own registration
    recorded = Recorded(gym.spec("AdroitHandPen-v1"))  # even from the 200-step registration
    for env, ends in ((make_d4rl_env("pen-cloned-v1", recorded), True), (recorded.recover_environment(), False)):
        env.reset(seed=0)
        hand = env.unwrapped
        assert env.spec.max_episode_steps == (100 if ends else 200)
        qpos = hand.data.qpos.copy()
        qpos[hand.model.joint("OBJTx").qposadr[0]] = 0.2  # the pen's slide along world z: down to z 0.05
        hand.set_state(qpos, np.zeros_like(hand.data.qvel))
        assert hand.data.body("Object").xpos[2] < 0.075
        _, _, terminated, _, _ = env.step(np.zeros(24, dtype=np.float32))
        assert terminated is ends
    assert d4rl_score("pen-cloned-v1", 3076.8331017826877) == pytest.approx(100.0)
    assert d4rl_score("pen-cloned-v1", 96.262799) == 0.0


def d4rl_door_reward(model, data) -> float:
    """D4RL's door reward (d4rl/hand_manipulation_suite/door_v0.py), transcribed."""
    handle, palm = data.site("S_handle").xpos, data.site("S_grasp").xpos
    door = data.qpos[model.joint("door_hinge").qposadr[0]]
    reward = -0.1 * np.linalg.norm(palm - handle) - 0.1 * (door - 1.57) * (door - 1.57)
    reward += -1e-5 * np.sum(data.qvel ** 2)
    return reward + 2 * (door > 0.2) + 8 * (door > 1.0) + 10 * (door > 1.35)


@pytest.mark.parametrize("task, env_id", [("door-cloned-v1", "AdroitHandDoor-v1"),
                                          ("hammer-cloned-v1", "AdroitHandHammer-v1"),
                                          ("relocate-cloned-v1", "AdroitHandRelocate-v1")])
def test_hand_tasks_get_d4rls_reward_sign(task, env_id):
    recorded = Recorded(adroit_spec(env_id, 200))
    assert spec_differences(task, recorded.spec) == [HAND_SIGN]
    d4rl, raw = make_d4rl_env(task, recorded), recorded.recover_environment()
    assert d4rl.spec.max_episode_steps == 200
    target = ("site", "S_handle") if task.startswith("door") else ("body", "Object")
    rng = np.random.default_rng(0)
    d4rl.reset(seed=3)
    raw.reset(seed=3)
    for _ in range(5):
        action = rng.uniform(-1, 1, d4rl.action_space.shape).astype(np.float32)
        _, mine, _, _, _ = d4rl.step(action)
        _, theirs, _, _, _ = raw.step(action)
        data = d4rl.unwrapped.data
        place = data.site(target[1]).xpos if target[0] == "site" else data.body(target[1]).xpos
        distance = np.linalg.norm(data.site("S_grasp").xpos - place)
        assert mine == pytest.approx(theirs - 0.2 * distance, abs=1e-9)  # +0.1 d turned into -0.1 d
        if task.startswith("door"):
            assert mine == pytest.approx(d4rl_door_reward(d4rl.unwrapped.model, data), abs=1e-9)


def test_verification_names_minaris_differences():
    runs = pd.DataFrame({"paper_sizes": [True, True], "offline_steps": [500000] * 2, "task_budget": [500000] * 2,
                         "setting": ["offline"] * 2, "online_steps": [0, 0], "data_source": ["download"] * 2,
                         "env_max_steps": [None, None], "task": ["pen-cloned-v1"] * 2, "suite": ["d4rl"] * 2,
                         "eval_differences": [PEN_DROP, PEN_DROP]})
    assert not_comparable_reasons(runs) == [f"Minari's evaluation env, not D4RL's: {PEN_DROP}"]
    assert not_comparable_reasons(runs.assign(eval_differences="")) == []
