import numpy as np
import pytest
from rramctl.training import data
from rramctl.training.data import DataError
from training_fixtures import write_fmnist, write_fsdd, write_idx


def test_idx_round_trip_pool_and_quantise(tmp_path, monkeypatch):
    write_fmnist(tmp_path, n_train=5, n_test=3)
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path))
    ds = data.load_fmnist()
    raw = data.read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    assert ds.train.x.shape == (5, 1, 14, 14) and ds.test.x.shape == (3, 1, 14, 14)
    # 2x2 max-pool then the top 4 bits of the byte
    assert ds.train.x[2, 0, 3, 4] == raw[2, 6:8, 8:10].max() >> 4
    assert ds.train.x.min() >= 0 and ds.train.x.max() <= 15 and ds.train.bits == 4


def test_idx_errors(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(b"\x01\x02\x03")
    with pytest.raises(DataError, match="IDX"):
        data.read_idx(bad)
    short = tmp_path / "short.gz"
    write_idx(short, np.zeros((2, 3), np.uint8))
    raw = short.read_bytes()
    import gzip

    (tmp_path / "trunc").write_bytes(gzip.decompress(raw)[:-1])
    with pytest.raises(DataError, match="bytes follow"):
        data.read_idx(tmp_path / "trunc")


def test_missing_fmnist_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path))
    monkeypatch.setattr(data, "FMNIST_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError, match="RRAMCTL_DATA"):
        data.fmnist_dir()


def test_offline_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "FMNIST_MIRROR", "http://127.0.0.1:9/")
    with pytest.raises(DataError, match="cannot download"):
        data._download(data.FMNIST_MIRROR + "x.gz", tmp_path / "x.gz")
    assert not (tmp_path / "x.gz").exists()


def test_fsdd_split_shape_and_bits(tmp_path, monkeypatch):
    write_fsdd(tmp_path / "fsdd" / "recordings")
    (tmp_path / "fsdd" / "recordings" / "notes.txt").write_text("ignored")
    monkeypatch.setenv("RRAMCTL_DATA", str(tmp_path))
    monkeypatch.setenv("RRAMCTL_CACHE", str(tmp_path / "cache"))
    ds = data.load_fsdd()
    # index 0-4 is test: 10 digits x 2 speakers x 5
    assert len(ds.test) == 100 and len(ds.train) == 20
    assert ds.train.x.shape[1:] == (1, 23, 15) and ds.train.bits == 3
    assert ds.train.x.min() >= 0 and ds.train.x.max() <= 7
    assert sorted(set(ds.test.y.tolist())) == list(range(10))
    # the second load comes from the feature cache and gives the same data
    assert len(list((tmp_path / "cache").glob("fsdd-mfcc-*.npz"))) == 1
    monkeypatch.setattr(data, "_extract_fsdd", lambda files: pytest.fail("features extracted again"))
    again = data.load_fsdd()
    assert np.array_equal(again.train.x, ds.train.x) and np.array_equal(again.test.y, ds.test.y)
    # a changed recording invalidates the cache
    wav = next((tmp_path / "fsdd" / "recordings").glob("*.wav"))
    wav.write_bytes(wav.read_bytes())
    import os

    os.utime(wav, ns=(1, 1))
    with pytest.raises(pytest.fail.Exception):
        data.load_fsdd()


def test_subset_is_seeded_and_checked():
    s = data.Split(np.arange(10)[:, None], np.arange(10), 4)
    assert np.array_equal(s.subset(4, 3).y, s.subset(4, 3).y)
    assert len(s.subset(None, 0)) == 10
    with pytest.raises(DataError):
        s.subset(0, 0)


def test_unknown_task():
    with pytest.raises(DataError, match="unknown task"):
        data.load_task_data("mnist")


@pytest.mark.dataset
def test_full_fashion_mnist_when_installed():
    try:
        ds = data.load_fmnist()
    except DataError:
        pytest.skip("Fashion-MNIST not installed")
    assert ds.train.x.shape == (60000, 1, 14, 14) and ds.test.x.shape == (10000, 1, 14, 14)
    assert np.bincount(ds.test.y).tolist() == [1000] * 10


@pytest.mark.dataset
def test_full_fsdd_when_available():
    try:
        root = data.fsdd_dir()
    except DataError:
        pytest.skip("FSDD recordings not available ($RRAMCTL_DATA)")
    if len(list(root.glob("*.wav"))) < 3000:
        pytest.skip("not the full FSDD")
    ds = data.load_fsdd(root)
    assert len(ds.train) == 2700 and len(ds.test) == 300


def test_a_named_data_dir_without_fashion_mnist_is_an_error_not_another_folder(tmp_path, monkeypatch):
    """``--data-dir`` (data.data_dir) names where the data is: a folder without the IDX files is an error (or the
    download target), never silently swapped for $RRAMCTL_DATA or the Debian package that hold them."""
    full = tmp_path / "full"
    full.mkdir()
    for pair in data.FMNIST_FILES.values():
        for n in pair:
            (full / n).write_bytes(b"")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("RRAMCTL_DATA", str(full))
    monkeypatch.setattr(data, "FMNIST_SYSTEM_DIR", full)
    assert data.fmnist_dir() == full  # no folder named: the fallbacks
    with pytest.raises(DataError, match="data-dir"):
        data.fmnist_dir(data_dir=empty)
    assert data.fmnist_dir(data_dir=full) == full
