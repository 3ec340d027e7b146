import numpy as np
import torch

from mfql.buffer import ReplayBuffer
from mfql.config import train_config
from mfql.train import Run


def dataset(n, obs_dim=2):
    return {"observations": np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim),
            "actions": np.zeros((n, 1), np.float32), "rewards": np.arange(n, dtype=np.float32),
            "masks": np.ones(n, np.float32), "next_observations": np.zeros((n, obs_dim), np.float32)}


def transition(value):
    return {"observations": np.full(2, value, np.float32), "actions": np.zeros(1, np.float32),
            "rewards": np.float32(value), "masks": np.float32(1), "next_observations": np.zeros(2, np.float32)}


def test_online_rows_wrap_around_like_the_official_buffer_and_round_trip():
    buffer = ReplayBuffer(dataset(5), capacity=6, online_steps=4, device=torch.device("cpu"))
    assert buffer.size == 5 and buffer.storage["rewards"].shape[0] == 6  # max(capacity, N + 1) rows
    for value in (100, 101, 102, 103):
        buffer.add(transition(value))
    # row 5 first, then the oldest offline rows 0, 1, 2 are overwritten
    assert buffer.storage["rewards"].tolist() == [101, 102, 103, 3, 4, 100]
    assert buffer.size == 6
    state = buffer.online_state()
    fresh = ReplayBuffer(dataset(5), capacity=6, online_steps=4, device=torch.device("cpu"))
    fresh.load_online_state(state)
    for key in buffer.storage:
        assert torch.equal(fresh.storage[key], buffer.storage[key])
    assert fresh.size == 6 and fresh.num_online == 4
    batch = buffer.sample(1000)
    assert set(batch["rewards"].tolist()) == {101, 102, 103, 3, 4, 100}


def test_online_antmaze_transitions_get_the_dataset_reward_shift(minari_dir, tmp_path):
    cfg = train_config(["task=antmaze-umaze-v2", f"out_dir={tmp_path}", f"data_dir={minari_dir}", "model=small",
                        "offline_steps=0", "online_steps=6", "env_max_steps=4", "eval_episodes=0", "device=cpu"])
    run = Run(cfg, "test", "no-data-hash", torch.device("cpu"))
    for _ in range(6):
        run.online_step()
    rows = slice(run.buffer.num_offline, run.buffer.num_offline + 6)
    rewards, masks = run.buffer.storage["rewards"][rows], run.buffer.storage["masks"][rows]
    assert set(rewards.tolist()) <= {-1.0, 0.0} and rewards.min() == -1.0  # env reward 0/1 -> -1/0
    assert masks.tolist() == [1.0] * 6  # no termination in 6 random-policy steps
    assert run.episode == 1  # episodes end at env_max_steps
    obs = run.buffer.storage["observations"][rows]
    assert obs.shape == (6, 29) and torch.equal(run.buffer.storage["next_observations"][rows][0], obs[1])
