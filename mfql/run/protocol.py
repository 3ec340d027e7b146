"""D4RL's evaluation protocol, under which the paper's D4RL numbers were measured, and Minari's evaluation
environments brought to it (docs/method.md, "D4RL's protocol through Minari").

The paper's D4RL numbers come from D4RL's own environments. mfql reads the data from Minari, whose
evaluation environments are gymnasium-robotics ones; where they differ from D4RL's, ``eval_protocol: d4rl``
(the D4RL task files' value) restores D4RL's behaviour, and ``eval_protocol: minari`` keeps Minari's
environment as it is (the verification then marks those rows ``not comparable`` with the differences).
Sources, all of D4RL at github.com/Farama-Foundation/D4RL unless named:
- episode limits: ``d4rl/locomotion/__init__.py`` (antmaze umaze 700, medium and large 1000) and
  ``d4rl/hand_manipulation_suite/__init__.py`` (pen 100; door, hammer, relocate 200);
- antmaze's goal: ``d4rl/locomotion/goal_reaching_env.py``: sparse reward 1 within 0.5 of the goal, and in
  evaluation mode the episode ends there (gymnasium-robotics uses 0.45 and, as Minari records it,
  ``continuing_task=True``: the episode runs on past the goal);
- pen: ``d4rl/hand_manipulation_suite/pen_v0.py`` ends the episode when the pen falls below z = 0.075;
- door, hammer, relocate: gymnasium-robotics 1.2.1 and later give ``AdroitHand{Door,Hammer,Relocate}-v1``'s
  hand-to-object reward term the opposite sign of D4RL's ``-0.1 * |palm - object|`` (Gymnasium-Robotics
  pull request 220; fixed only in the v2 environments);
- reference scores: ``d4rl/infos.py`` and ``d4rl/hand_manipulation_suite/__init__.py`` (antmaze 0 and 1, so
  that its score is the success rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np

PROTOCOLS = ("d4rl", "minari")
ANTMAZE_GOAL_RADIUS = 0.5  # D4RL; gymnasium-robotics' AntMaze tests 0.45
GYMNASIUM_ANTMAZE_RADIUS = 0.45
PEN_DROP_HEIGHT = 0.075
HAND_TERM_SCALE = 0.1  # D4RL's reward starts with -0.1 * |palm - object|; gymnasium-robotics' v1 with +0.1


@dataclass(frozen=True)
class D4RLEnv:
    """What D4RL's environment of one family does."""
    max_episode_steps: int
    ref_scores: tuple[float, float]  # score = 100 * (return - min) / (max - min)
    goal_radius: float | None = None  # antmaze: reward 1 and the episode's end within this distance of the goal
    ends_when_dropped: bool = False  # pen
    hand_target: tuple[str, str] | None = None  # door, hammer, relocate: the hand term's ("site"|"body", name)


D4RL_ENVS = {
    "antmaze-umaze": D4RLEnv(700, (0.0, 1.0), goal_radius=ANTMAZE_GOAL_RADIUS),
    "antmaze-medium": D4RLEnv(1000, (0.0, 1.0), goal_radius=ANTMAZE_GOAL_RADIUS),
    "antmaze-large": D4RLEnv(1000, (0.0, 1.0), goal_radius=ANTMAZE_GOAL_RADIUS),
    "pen": D4RLEnv(100, (96.262799, 3076.8331017826877), ends_when_dropped=True),
    "door": D4RLEnv(200, (-56.512833, 2880.5693087298737), hand_target=("site", "S_handle")),
    "hammer": D4RLEnv(200, (-274.856578, 12794.134825156867), hand_target=("body", "Object")),
    "relocate": D4RLEnv(200, (-6.425911, 4233.877797728884), hand_target=("body", "Object")),
}


def family(task: str) -> str:
    """antmaze-umaze-diverse-v2 -> antmaze-umaze; pen-cloned-v1 -> pen."""
    parts = task.split("-")
    return "-".join(parts[:2]) if parts[0] == "antmaze" else parts[0]


def d4rl_env(task: str) -> D4RLEnv:
    return D4RL_ENVS[family(task)]


def hand_reward_sign_flipped(env_id: str) -> bool:
    """Whether gymnasium-robotics' env gives the hand-to-object term the opposite sign of D4RL's."""
    from importlib.metadata import version

    from packaging.version import Version

    return (env_id.split("-")[0] in ("AdroitHandDoor", "AdroitHandHammer", "AdroitHandRelocate")
            and env_id.endswith("-v1") and Version(version("gymnasium-robotics")) >= Version("1.2.1"))


def spec_differences(task: str, spec) -> list[str]:
    """How an episode of the environment ``spec`` (Minari's recorded evaluation env) differs from D4RL's."""
    d4rl = d4rl_env(task)
    out = []
    if spec.max_episode_steps != d4rl.max_episode_steps:
        out.append(f"episodes of {spec.max_episode_steps} steps, D4RL's {d4rl.max_episode_steps}")
    if d4rl.goal_radius is not None:
        if spec.kwargs.get("continuing_task", True):
            out.append("the episode runs on past the goal (continuing_task), D4RL's ends there")
        out.append(f"goal radius {GYMNASIUM_ANTMAZE_RADIUS}, D4RL's {d4rl.goal_radius}")
    if d4rl.ends_when_dropped:
        out.append("the episode runs on after the pen drops, D4RL's ends there")
    if d4rl.hand_target is not None and hand_reward_sign_flipped(spec.id):
        out.append("the hand-to-object reward term has the opposite sign of D4RL's (gymnasium-robotics PR 220)")
    return out


def make_d4rl_env(task: str, minari_dataset):
    """Minari's evaluation environment of ``task`` with D4RL's episode limit, goal test, termination and
    reward."""
    d4rl = d4rl_env(task)
    overrides = {"max_episode_steps": d4rl.max_episode_steps}
    if d4rl.goal_radius is not None:
        overrides.update(continuing_task=False, reset_target=False)
    env = minari_dataset.recover_environment(eval_env=True, **overrides)
    if d4rl.goal_radius is not None:
        return AntMazeGoal(env, d4rl.goal_radius)
    if d4rl.ends_when_dropped:
        return PenDrop(env)
    if d4rl.hand_target is not None and hand_reward_sign_flipped(env.spec.id):
        return HandTermSign(env, *d4rl.hand_target)
    return env


def d4rl_score(task: str, episode_return: float) -> float:
    low, high = d4rl_env(task).ref_scores
    return 100.0 * (episode_return - low) / (high - low)


class AntMazeGoal(gymnasium.Wrapper):
    """D4RL's antmaze evaluation: reward 1 within ``radius`` of the goal, else 0, and the episode ends there."""

    def __init__(self, env, radius: float):
        super().__init__(env)
        self.radius = radius

    def step(self, action):
        obs, _, _, truncated, info = self.env.step(action)
        reached = bool(np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]) <= self.radius)
        return obs, float(reached), reached, truncated and not reached, {**info, "success": reached}


class PenDrop(gymnasium.Wrapper):
    """D4RL's pen: the episode ends when the pen falls below z = 0.075 (gymnasium-robotics' step already
    subtracts D4RL's 5 for it)."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        dropped = bool(self.env.unwrapped.data.body("Object").xpos[2] < PEN_DROP_HEIGHT)
        return obs, reward, terminated or dropped, truncated and not dropped, info


class HandTermSign(gymnasium.Wrapper):
    """D4RL's door, hammer and relocate reward: gymnasium-robotics' v1 reward with its hand-to-object term
    ``+0.1 * |palm - target|`` turned back into D4RL's ``-0.1 * |palm - target|``."""

    def __init__(self, env, kind: str, name: str):
        super().__init__(env)
        self.kind, self.name = kind, name

    def hand_distance(self) -> float:
        data = self.env.unwrapped.data
        target = data.site(self.name).xpos if self.kind == "site" else data.body(self.name).xpos
        return float(np.linalg.norm(data.site("S_grasp").xpos - target))

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward - 2 * HAND_TERM_SCALE * self.hand_distance(), terminated, truncated, info
