"""Training-set augmentation (data.flip, data.shift; rramctl.training.augment): the documented draws and moves,
only on training batches, resumable, refused where it does not apply."""

import numpy as np
import pytest
from pydantic import ValidationError
from rramctl.training.augment import AUGMENT_STREAM, EpochAugmentation, augment_maps
from rramctl.training.config import TrainConfig


def reference(x, flip, shift):
    """The docs' rule, one map at a time: reverse each row, then move by (dy, dx) with zeros filled in."""
    out = np.zeros_like(x)
    for i in range(len(x)):
        m = x[i][..., ::-1] if flip[i] else x[i]
        dy, dx = shift[i]
        h, w = m.shape[-2:]
        for r in range(h):
            for c in range(w):
                if 0 <= r - dy < h and 0 <= c - dx < w:
                    out[i, :, r, c] = m[:, r - dy, c - dx]
    return out


@pytest.mark.parametrize("dtype", [np.int64, np.float32])
def test_maps_move_as_documented(dtype):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 16, (9, 2, 14, 14)).astype(dtype)
    flip = rng.integers(0, 2, 9).astype(bool)
    shift = rng.integers(-2, 3, (9, 2))
    got = augment_maps(x, flip, shift)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, reference(x, flip, shift))
    np.testing.assert_array_equal(augment_maps(x, np.zeros(9, bool), np.zeros((9, 2), np.int64)), x)


def test_draws_are_the_documented_stream():
    a = EpochAugmentation.draw(seed=5, epoch=3, n=100, flip=True, shift=1)
    rng = np.random.default_rng((5, 3, AUGMENT_STREAM))
    np.testing.assert_array_equal(a.flip, rng.integers(0, 2, 100).astype(bool))
    np.testing.assert_array_equal(a.shift, rng.integers(-1, 2, (100, 2)))
    b = EpochAugmentation.draw(seed=5, epoch=4, n=100, flip=True, shift=1)
    assert not np.array_equal(a.flip, b.flip)  # another epoch, other draws
    none = EpochAugmentation.draw(seed=5, epoch=3, n=10, flip=False, shift=0)
    assert not none.flip.any() and not none.shift.any()


def test_only_for_fashion_mnist_and_bounded():
    assert TrainConfig(task="fmnist-cnn", data={"flip": True, "shift": 2}).data.shift == 2
    with pytest.raises(ValidationError, match="augment Fashion-MNIST"):
        TrainConfig(task="fsdd-crnn", data={"flip": True})
    with pytest.raises(ValidationError):
        TrainConfig(task="fmnist-cnn", data={"shift": 5})


def test_a_run_trains_on_augmented_batches_and_evaluates_clean(tmp_path, monkeypatch):
    from rramctl.training import runner as R
    from training_fixtures import easy_images

    seen = []
    real_step = R.Run._step

    def spy(self, x, y):
        seen.append(x.copy())
        return real_step(self, x, y)

    monkeypatch.setattr(R.Run, "_step", spy)
    data = easy_images(n_train=48, n_test=16)
    cfg = TrainConfig(task="fmnist-cnn", backend="software", epochs=1, optimiser={"batch_size": 16},
                      data={"validation": 0.25, "flip": True, "shift": 1})  # fmt: skip
    run = R.Run.open(cfg, tmp_path / "run", data)
    run.train()
    n = len(run.train_split)
    aug = EpochAugmentation.draw(0, 0, n, True, 1)
    order = np.random.default_rng(0 * 1_000_003 + 0).permutation(n)
    inputs = run.train_split.inputs(run.raw_inputs)
    for s, x in enumerate(seen):
        idx = order[s * 16 : (s + 1) * 16]
        np.testing.assert_array_equal(x, reference(inputs[idx], aug.flip[idx], aug.shift[idx]))
    assert any(not np.array_equal(x, inputs[order[s * 16 : (s + 1) * 16]]) for s, x in enumerate(seen))
    run.close()
