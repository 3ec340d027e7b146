import numpy as np
import pytest
import torch

from mfql.config import train_config
from mfql.data.buffer import ReplayBuffer, offline_storage, sample_packed
from mfql.run.trainer import Run


def dataset(n, obs_dim=2):
    return {"observations": np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim),
            "actions": np.zeros((n, 1), np.float32), "rewards": np.arange(n, dtype=np.float32),
            "masks": np.ones(n, np.float32), "next_observations": np.zeros((n, obs_dim), np.float32)}


def transition(value):
    return {"observations": np.full(2, value, np.float32), "actions": np.zeros(1, np.float32),
            "rewards": np.float32(value), "masks": np.float32(1), "next_observations": np.zeros(2, np.float32)}


def rows(buffer):
    """The buffer as one array of positions 0 .. size - 1."""
    return buffer.gather(torch.arange(buffer.size))


def test_online_rows_wrap_around_like_the_official_buffer_and_round_trip():
    buffer = ReplayBuffer(dataset(5), capacity=6, online_steps=4, device=torch.device("cpu"))
    assert buffer.size == 5 and buffer.max_rows == 6  # max(capacity, N + 1) rows
    for value in (100, 101, 102, 103):
        buffer.add(transition(value))
    # row 5 first, then the oldest offline rows 0, 1, 2 are overwritten
    assert rows(buffer)["rewards"].tolist() == [101, 102, 103, 3, 4, 100]
    assert rows(buffer)["observations"][:, 0].tolist() == [101, 102, 103, 6, 8, 100]
    assert buffer.size == 6
    state = buffer.online_state()
    fresh = ReplayBuffer(dataset(5), capacity=6, online_steps=4, device=torch.device("cpu"))
    fresh.load_online_state(state)
    for key, value in rows(buffer).items():
        assert torch.equal(rows(fresh)[key], value)
    assert fresh.size == 6 and fresh.num_online == 4
    batch = buffer.sample(1000)
    assert set(batch["rewards"].tolist()) == {101, 102, 103, 3, 4, 100}


def test_online_rows_that_overwrite_themselves_keep_only_the_newest():
    buffer = ReplayBuffer(dataset(2), capacity=3, online_steps=5, device=torch.device("cpu"))
    for value in range(100, 105):
        buffer.add(transition(value))
    # positions 2, 0, 1, 2, 0 in turn: the newest write of each position wins
    assert rows(buffer)["rewards"].tolist() == [104, 102, 103]


def test_packed_buffers_share_the_dataset_and_sample_what_each_samples_alone():
    data, cpu = dataset(50), torch.device("cpu")
    shared = offline_storage(data, cpu)
    buffers = [ReplayBuffer(data, 60, 20, cpu, offline=shared) for _ in range(3)]
    assert all(b.offline["observations"] is shared["observations"] for b in buffers)
    for seed, buffer in enumerate(buffers):  # each seed its own online rows
        for value in range(seed * 3):
            buffer.add(transition(1000 * seed + value))
    alone = ReplayBuffer(data, 60, 20, cpu)
    for value in range(3):
        alone.add(transition(1000 + value))
    packed = sample_packed(buffers, 64, [torch.Generator().manual_seed(s) for s in range(3)])
    for seed, buffer in enumerate(buffers):
        single = buffer.sample(64, torch.Generator().manual_seed(seed))
        for key in single:
            assert torch.equal(packed[key][seed], single[key])
    # seed 1's buffer holds exactly what an unshared buffer with the same writes holds
    for key, value in rows(alone).items():
        assert torch.equal(rows(buffers[1])[key], value)
    assert {int(r) for r in rows(buffers[1])["rewards"][50:]} == {1000, 1001, 1002}


def test_online_antmaze_transitions_get_the_dataset_reward_shift(minari_dir, tmp_path):
    cfg = train_config(["task=antmaze-umaze-v2", f"out_dir={tmp_path}", f"data_dir={minari_dir}", "model=small",
                        "offline_steps=0", "online_steps=6", "env_max_steps=4", "eval_episodes=0", "device=cpu"])
    run = Run(cfg, "test", "no-data-hash", torch.device("cpu"))
    for _ in range(6):
        run.online.step()
    online = rows(run.buffer)
    rewards, masks = online["rewards"][-6:], online["masks"][-6:]
    assert set(rewards.tolist()) <= {-1.0, 0.0} and rewards.min() == -1.0  # env reward 0/1 -> -1/0
    assert masks.tolist() == [1.0] * 6  # no termination in 6 random-policy steps
    assert run.online.episode == 1  # episodes end at env_max_steps
    obs = online["observations"][-6:]
    assert obs.shape == (6, 29) and torch.equal(online["next_observations"][-6:][0], obs[1])


@pytest.mark.slow
def test_an_offline_run_allocates_the_dataset_only_and_official_stats_keep_the_configured_padding(
        ogbench_dir, tmp_path):
    """No online phase: the buffer's tensors hold the dataset's rows and no more (buffer_size=2M only sets the
    official statistics' zero-padding); with online steps, exactly that many online rows are added."""
    from mfql.data.datasets import load_ogbench, observation_stats

    task = "cube-single-play-singletask-task1-v0"
    common = [f"task={task}", f"out_dir={tmp_path}", f"data_dir={ogbench_dir.parent}", "model=small", "eval_episodes=0",
              "device=cpu"]
    offline = Run(train_config([*common, "offline_steps=10"]), "test", "no-data-hash", torch.device("cpu"))
    dataset = load_ogbench(task, ogbench_dir.parent, verify=False)[1]
    rows_in = len(dataset["observations"])
    assert offline.cfg.buffer_size == 2_000_000 and rows_in < 10_000
    assert {value.shape[0] for value in offline.buffer.offline.values()} == {rows_in}
    assert all(value.shape[0] == 0 for value in offline.buffer.online.values())
    mean, std = observation_stats(dataset["observations"], 2_000_000)
    assert torch.equal(offline.agent.obs_mean.cpu(), torch.as_tensor(mean))  # padded to 2M, not to N
    assert torch.equal(offline.agent.obs_std.cpu(), torch.as_tensor(std))
    online = Run(train_config([*common, "offline_steps=10", "online_steps=7"]), "test", "no-data-hash",
                 torch.device("cpu"))
    assert all(value.shape[0] == 7 for value in online.buffer.online.values())


def test_next_actions_are_the_next_positions_action_as_fqls_datasets_give_them():
    data = {**dataset(4), "actions": np.arange(4, dtype=np.float32).reshape(4, 1)}
    buffer = ReplayBuffer(data, capacity=4, online_steps=2, device=torch.device("cpu"))
    assert "next_actions" not in rows(buffer)  # only for a method that asks for them
    buffer.next_actions = True
    assert rows(buffer)["next_actions"].flatten().tolist() == [1, 2, 3, 3]  # the last position: its own
    buffer.add({**transition(9), "actions": np.full(1, 7, np.float32)})  # position 4, the first online row
    assert rows(buffer)["next_actions"].flatten().tolist() == [1, 2, 3, 7, 7]
