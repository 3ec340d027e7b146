"""Pixel inputs: FQL's IMPALA encoder (shape and parameter count), frame stacks built from indices against
stacks built by hand, FQL's random-shift augmentation (bounds, shared offsets, probability), and the memory
the frames take."""

import numpy as np
import pytest
import torch

from mfql.agents.encoders import make_encoder, same_max_pool
from mfql.data.pixels import FrameStore, episode_starts, random_shift


def test_impala_small_matches_fql_for_three_stacked_frames():
    encoder = make_encoder("impala_small", (64, 64, 9))
    # by hand from FQL's ImpalaEncoder(num_blocks=1), stacks 16, 32, 32, MLP (512,):
    # stack 1: conv 9->16 (1,312) + block 2 x (16->16) (4,640); stack 2: 4,640 + 18,496; stack 3: 9,248 + 18,496;
    # 64 -> 32 -> 16 -> 8 by the three pools, so the MLP takes 8 x 8 x 32 = 2,048 -> 512 (1,049,088)
    assert sum(p.numel() for p in encoder.parameters()) == 1312 + 4640 + 4640 + 18496 + 9248 + 18496 + 1049088
    out = encoder(torch.randint(0, 256, (2, 3, 64, 64, 9), dtype=torch.uint8))
    assert out.shape == (2, 3, 512) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="encoder='resnet' is not known"):
        make_encoder("resnet", (64, 64, 9))


def test_same_max_pool_takes_flax_windows():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    # 'SAME', window 3, stride 2 on 4: windows start at rows 0 and 2, the second one padded below
    assert same_max_pool(x).flatten().tolist() == [10.0, 11.0, 14.0, 15.0]
    assert same_max_pool(torch.zeros(1, 1, 64, 64)).shape[-2:] == (32, 32)


def frames_and_terminals():
    # two trajectories of 4 and 3 frames; frame i is filled with the value i
    terminals = np.array([0, 0, 0, 1, 0, 0, 1])
    frames = np.stack([np.full((4, 5, 3), i, dtype=np.uint8) for i in range(7)])
    return frames, terminals


def test_frame_stacks_from_indices_equal_stacks_built_by_hand():
    frames, terminals = frames_and_terminals()
    assert episode_starts(terminals).tolist() == [0, 0, 0, 0, 4, 4, 4]
    store = FrameStore(frames, terminals, stack=3, device=torch.device("cpu"))
    assert store.transitions.tolist() == [0, 1, 2, 4, 5]  # the last frame of a trajectory starts none
    obs, next_obs = store.observations(torch.arange(5))
    by_hand = {0: [0, 0, 0], 1: [0, 0, 1], 2: [0, 1, 2], 4: [4, 4, 4], 5: [4, 4, 5], 3: [1, 2, 3], 6: [4, 5, 6]}
    for row, frame in enumerate([0, 1, 2, 4, 5]):
        expected = np.concatenate([frames[i] for i in by_hand[frame]], axis=-1)  # oldest first, on channels
        assert np.array_equal(obs[row].numpy(), expected)
        expected_next = np.concatenate([frames[i] for i in by_hand[frame + 1]], axis=-1)
        assert np.array_equal(next_obs[row].numpy(), expected_next)
    assert obs.dtype == torch.uint8 and obs.shape == (5, 4, 5, 9)
    with pytest.raises(ValueError, match="must be uint8"):
        FrameStore(frames.astype(np.float32), terminals, 3, torch.device("cpu"))


def test_frames_are_stored_once_as_uint8():
    frames = np.zeros((1000, 64, 64, 3), dtype=np.uint8)
    terminals = np.zeros(1000)
    terminals[499::500] = 1
    store = FrameStore(frames, terminals, stack=3, device=torch.device("cpu"))
    index_bytes = 8 * (1000 + 998)  # int64 episode start per frame, frame index per transition
    assert store.nbytes == frames.nbytes + index_bytes  # no float copy, no next-observation or stack copy
    # scaled to an OGBench visual dataset (1,000 trajectories of 1,001 frames): docs/configuration.md's 12.3 GB per task
    assert (store.nbytes - index_bytes) / 1000 * 1_001_000 == 12_300_288_000


def test_random_shift_stays_in_bounds_shares_offsets_and_follows_its_probability():
    image = torch.arange(8 * 8, dtype=torch.float32).reshape(1, 8, 8, 1).repeat(64, 1, 1, 1)
    generator = torch.Generator().manual_seed(0)
    shifted, shifted_next = random_shift(image, image + 1000, generator, probability=1.0)
    assert torch.equal(shifted_next, shifted + 1000)  # the same offset for obs and next obs
    for crop in shifted:
        # each crop is the 8x8 image shifted by (dy, dx) in [-3, 3] with edge values repeated
        found = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                 if torch.equal(crop[..., 0], image[0, ..., 0][np.clip(np.arange(8) + dy, 0, 7)][
                     :, np.clip(np.arange(8) + dx, 0, 7)])]
        assert len(found) == 1
    assert len({tuple(c.flatten().tolist()) for c in shifted}) > 20  # offsets differ between samples
    applied = sum(not torch.equal(random_shift(image, image, generator, probability=0.5)[0], image)
                  for _ in range(400))
    # one coin per batch: about half the batches (a batch whose 64 offsets are all 0 is 49^-64 unlikely)
    assert 160 < applied < 240
    never = [torch.equal(random_shift(image, image, generator, probability=0.0)[0], image) for _ in range(20)]
    assert all(never)
