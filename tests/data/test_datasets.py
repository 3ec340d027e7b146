import shutil

import numpy as np
import pytest

from mfql.data.datasets import (
    apply_d4rl_conventions,
    checksums_path,
    dataset_mb,
    load_minari,
    load_ogbench,
    observation_stats,
)
from mfql.fetch import record_checksums


def test_regenerated_ogbench_layout(ogbench_dir):
    train = np.load(ogbench_dir / "cube-single-play-v0.npz")
    val = np.load(ogbench_dir / "cube-single-play-v0-val.npz")
    assert set(train.files) == {"observations", "actions", "terminals", "qpos", "qvel"}
    assert train["observations"].shape == (4 * 101, 28) and train["actions"].shape == (4 * 101, 5)
    assert train["qpos"].shape[1] == 21 and train["qvel"].shape[1] == 20
    assert train["terminals"].sum() == 4 and train["terminals"][100] == 1  # last row of each episode
    assert val["observations"].shape == (101, 28)
    assert np.abs(train["actions"]).max() <= 1.0
    assert not np.allclose(train["observations"][:101], val["observations"])


def test_dataset_size_is_its_files_arrays_uncompressed(ogbench_dir, tmp_path):
    assert dataset_mb(checksums_path(tmp_path, "cube-single-play-v0")) is None  # not there yet
    shutil.copytree(ogbench_dir, tmp_path / "ogbench")
    record = record_checksums("cube-single-play-v0", tmp_path)  # as the fetch rule does after datagen
    arrays = [np.load(tmp_path / "ogbench" / f"cube-single-play-v0{part}.npz") for part in ("", "-val")]
    nbytes = sum(data[key].nbytes for data in arrays for key in data.files)
    assert nbytes / 2**20 < dataset_mb(record) < (nbytes + 10 * 256) / 2**20  # an .npy header: at most 256 bytes


@pytest.mark.slow
def test_regenerated_data_loads_through_ogbench_and_relabels_per_task(ogbench_dir):
    goals = {}
    for task_id in (1, 2, 3):
        env, data = load_ogbench(f"cube-single-play-singletask-task{task_id}-v0", ogbench_dir.parent)
        assert data["observations"].shape == (400, 28) and data["next_observations"].shape == (400, 28)
        np.testing.assert_array_equal(data["observations"][1:100], data["next_observations"][:99])
        # rewards/masks from OGBench's relabelling: success = cube within 4 cm of this task's goal
        raw = np.load(ogbench_dir / "cube-single-play-v0.npz")
        keep = raw["terminals"] == 0
        env.reset()
        goal = env.unwrapped._data.mocap_pos[0]
        success = np.linalg.norm(raw["qpos"][keep][:, 14:17] - goal, axis=-1) <= 0.04
        np.testing.assert_array_equal(data["rewards"], success.astype(np.float32) - 1.0)
        np.testing.assert_array_equal(data["masks"], 1.0 - success)
        assert np.abs(data["actions"]).max() <= 1 - 1e-5
        goals[task_id] = goal.copy()
    assert not np.allclose(goals[1], goals[2])  # each task has its own goal


@pytest.mark.slow
def test_regenerated_visual_dataset_loads_through_ogbench(visual_dir):
    """A tiny visual-cube-single dataset from mfql.datagen (frames rendered with EGL) in OGBench's layout:
    ogbench's own loader reads it and relabels it for a task; ours keeps every frame once."""
    import ogbench

    from mfql.data.datasets import load_ogbench_pixels

    raw = np.load(visual_dir / "visual-cube-single-play-v0.npz")
    assert raw["observations"].shape == (32, 64, 64, 3) and raw["observations"].dtype == np.uint8
    assert raw["qpos"].shape == (32, 21) and raw["terminals"].tolist() == ([0] * 15 + [1]) * 2
    assert raw["observations"].std() > 1  # rendered images, not blank frames
    env, train, _ = ogbench.make_env_and_datasets("visual-cube-single-play-singletask-task1-v0",
                                                  dataset_dir=str(visual_dir))
    assert train["observations"].shape == (30, 64, 64, 3) and train["observations"].dtype == np.uint8
    np.testing.assert_array_equal(train["next_observations"][:14], train["observations"][1:15])  # episode 1
    assert train["rewards"].shape == (30,) and set(np.unique(train["rewards"])) <= {-1.0, 0.0}
    ob, _ = env.reset(seed=0)
    assert ob.shape == (64, 64, 3) and ob.dtype == np.uint8
    _, ours = load_ogbench_pixels("visual-cube-single-play-singletask-task1-v0", visual_dir.parent)
    np.testing.assert_array_equal(ours["frames"], raw["observations"])  # all 32 frames, once
    keep = ours["ends"] == 0
    np.testing.assert_array_equal(ours["rewards"][keep], train["rewards"])  # ogbench's relabelling
    np.testing.assert_array_equal(ours["actions"][keep], np.clip(train["actions"], -1 + 1e-5, 1 - 1e-5))


def test_missing_ogbench_data_names_both_ways_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_ogbench("cube-single-play-singletask-task1-v0", tmp_path)
    msg = str(err.value)
    assert "cube-single-play-v0" in msg and "mfql.fetch" in msg and "mfql.datagen" in msg


def test_observation_stats_official_padding_and_corrected():
    rng = np.random.default_rng(0)
    obs = rng.normal(3.0, 2.0, size=(1000, 4)).astype(np.float32)
    obs[:, 3] = 7.0  # constant dimension
    mean, std = observation_stats(obs, None)
    np.testing.assert_allclose(mean, obs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std[:3], obs.std(0)[:3], rtol=1e-4)
    assert std[3] == 1.0  # std < 1e-6 -> 1
    padded = np.concatenate([obs, np.zeros((3000, 4), np.float32)]).astype(np.float64)
    mean_p, std_p = observation_stats(obs, 4000)
    np.testing.assert_allclose(mean_p, padded.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std_p, padded.std(0), rtol=1e-4)
    # the official buffer always has at least N + 1 rows
    _, std_full = observation_stats(obs, 10)
    np.testing.assert_allclose(std_full, np.concatenate([obs, np.zeros((1, 4))]).std(0), rtol=1e-4)


def test_official_observation_stats_equal_numpy_float32_over_the_padded_buffer():
    """parity=official: bit for bit NumPy's float32 mean and std over the zero-padded 2M-row buffer (the
    official code's arrays), on a 1M-row dataset; parity=corrected: the exact statistics."""
    rng = np.random.default_rng(0)
    rows = 1_000_000
    obs = (rng.normal(0, 1, (rows, 5)) * [1, 10, 100, 0.01, 1] + [5, -20, 300, 0.5, 0]).astype(np.float32)
    obs[:, 4] = 1.0 + rng.normal(0, 3e-7, rows).astype(np.float32)  # near-constant: official std < 1e-6
    buffer = np.zeros((2_000_000, 5), np.float32)
    buffer[:rows] = obs
    mean, std = observation_stats(obs, 2_000_000)
    numpy_std = buffer.std(0)
    numpy_std[numpy_std < 1e-6] = 1.0
    np.testing.assert_array_equal(mean, buffer.mean(0))
    np.testing.assert_array_equal(std, numpy_std)
    exact = buffer.astype(np.float64)
    assert np.abs(std[:3] / exact.std(0)[:3] - 1).max() > 1e-3  # float32's accumulation is visibly off
    # corrected: the dataset alone, exactly (float64)
    mean_c, std_c = observation_stats(obs, None)
    np.testing.assert_allclose(mean_c, obs.astype(np.float64).mean(0), rtol=1e-7)
    np.testing.assert_allclose(std_c[:4], obs.astype(np.float64).std(0)[:4], rtol=1e-6)


def test_antmaze_reward_shift_and_action_clip():
    data = {"rewards": np.array([0.0, 1.0, 0.0], np.float32), "actions": np.array([[1.0, -1.0, 0.5]], np.float32)}
    out = apply_d4rl_conventions("antmaze-umaze-v2", data)
    np.testing.assert_array_equal(out["rewards"], [-1.0, 0.0, -1.0])
    np.testing.assert_allclose(out["actions"], [[1 - 1e-5, -1 + 1e-5, 0.5]])
    adroit = apply_d4rl_conventions("pen-cloned-v1", data)
    np.testing.assert_array_equal(adroit["rewards"], data["rewards"])


def test_minari_antmaze_written_with_the_real_api_loads_with_paper_conventions(minari_dir):
    ds, data = load_minari("antmaze-umaze-v2", minari_dir)
    assert data["observations"].shape == (3 * 30, 29)  # (x, y) + 27-d ant state, as D4RL
    assert data["rewards"].min() == -1.0 and data["rewards"].max() == 0.0  # 0/1 -> -1/0
    assert data["masks"][59] == 0.0 and data["masks"].sum() == 89  # mask = 1 - terminals
    np.testing.assert_array_equal(data["observations"][1:30], data["next_observations"][:29])
    assert np.abs(data["actions"]).max() <= 1 - 1e-5
    assert ds.spec.dataset_id == "D4RL/antmaze/umaze-v1"


def test_minari_adroit_keeps_raw_rewards(minari_dir):
    _, data = load_minari("pen-cloned-v1", minari_dir)
    assert data["observations"].shape == (2 * 20, 45) and data["actions"].shape == (40, 24)
    assert data["rewards"].max() > 0  # no shift


@pytest.mark.slow
def test_datagen_is_deterministic_for_a_seed(tmp_path):
    from tests.conftest import run_module

    for name in ("a", "b", "c"):
        seed = "1" if name != "c" else "2"
        run_module("mfql.datagen", "dataset=puzzle-3x3-play-v0", "episodes=1", "val_episodes=1",
                   "episode_steps=40", f"out_dir={tmp_path / name}", f"seed={seed}")
    a, b, c = (np.load(tmp_path / n / "puzzle-3x3-play-v0.npz") for n in ("a", "b", "c"))
    assert set(a.files) == {"observations", "actions", "terminals", "qpos", "qvel", "button_states"}
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["actions"], c["actions"])


def test_a_wrong_dataset_file_is_refused_with_both_ways_to_get_it(tmp_path, ogbench_dir):
    import json
    import shutil

    from mfql.errors import DatasetError
    from tests.conftest import run_module

    data = tmp_path / "data"
    shutil.copytree(ogbench_dir, data / "ogbench")
    run_module("mfql.fetch", "dataset=cube-single-play-v0", f"data_dir={data}", "checksum_only=true")
    record = json.loads((data / "checksums" / "cube-single-play-v0.json").read_text())
    assert set(record) == {"ogbench/cube-single-play-v0.npz", "ogbench/cube-single-play-v0-val.npz"}
    load_ogbench("cube-single-play-singletask-task1-v0", data)  # matches: loads
    shutil.copy(data / "ogbench" / "cube-single-play-v0-val.npz", data / "ogbench" / "cube-single-play-v0.npz")
    with pytest.raises(DatasetError) as err:
        load_ogbench("cube-single-play-singletask-task1-v0", data)
    msg = str(err.value)
    assert "cube-single-play-v0" in msg and "mfql.fetch" in msg and "mfql.datagen" in msg
