"""Data sets: Fashion-MNIST from IDX .gz files and the Free Spoken Digit Dataset from WAV files.

Both come out as integer feature maps ready for bit-serial multiplication: Fashion-MNIST max-pooled
28x28 -> 14x14 and quantised to 4 bits, spoken digits as 23x15 MFCC maps quantised to 3 bits
(seed 000 Results and Methods "Multi-Bit vector-matrix multiplications": m = 4 for the CNN, 3 for the CRNN),
each beside its unquantised features in [0, 1] (for the paper's per-batch input quantisation). The
paper's own spoken-digit feature file (23x20 maps, its 2,100/900 split) loads with :func:`load_paper_features`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rramctl.errors import UsageError
from rramctl.fileio import atomic_open, atomic_write_with
from rramctl.paths import READ_ERRORS

FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FMNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
FMNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # zalandoresearch/fashion-mnist README
FMNIST_BITS = 4  # seed 000 Methods: m = 4 for the CNN
FSDD_BITS = 3  # seed 000 Methods: m = 3 for the CRNN
FSDD_SAMPLE_RATE = 8000  # seed 000 Results: recordings sampled at 8 kHz
MFCC_COEFFS = 23  # seed 000 Results: 23 x 15 acoustic feature maps
MFCC_FRAMES = 15
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")  # FSDD README: {digitLabel}_{speakerName}_{index}.wav
FSDD_TEST_INDICES = range(5)  # FSDD README: recordings 0-4 of each speaker and digit form the test set


class DataError(UsageError):
    """A data set that is missing, malformed or cannot be fetched."""


@dataclass(frozen=True)
class Split:
    """Integer inputs (N, C, H, W) in [0, 2**bits), labels (N,) and the unquantised features in [0, 1]."""

    x: NDArray[np.int64]
    y: NDArray[np.int64]
    bits: int
    raw: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"{len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None, seed: int) -> Split:
        """A class-balanced-by-chance random subset of n samples (all when n is None or >= len)."""
        if n is None or n >= len(self):
            return self
        if n < 1:
            raise DataError(f"subset must be >= 1, got {n}")
        return self.take(np.sort(np.random.default_rng(seed).permutation(len(self))[:n]))

    def take(self, idx: NDArray[np.int64]) -> Split:
        return Split(self.x[idx], self.y[idx], self.bits, None if self.raw is None else self.raw[idx])

    def split_off(self, fraction: float, seed: int) -> tuple[Split, Split]:
        """(rest, held out): round(fraction * N) samples drawn at random (seeded) are held out; fraction 0: all
        samples and an empty held-out split, nothing drawn."""
        if fraction == 0:
            return self, self.take(np.zeros(0, dtype=np.int64))
        n_held = round(fraction * len(self))
        if not 0 < n_held < len(self):
            raise DataError(f"a validation fraction of {fraction} leaves {n_held} of {len(self)} samples")
        order = np.random.default_rng(seed).permutation(len(self))
        return self.take(np.sort(order[n_held:])), self.take(np.sort(order[:n_held]))

    def inputs(self, raw: bool) -> NDArray[np.floating] | NDArray[np.int64]:
        """The network's inputs: the integer codes, or the unquantised features (``raw``)."""
        if not raw:
            return self.x
        if self.raw is None:
            raise DataError("this data set has no unquantised features (input_quant needs them)")
        return self.raw


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split


# ---- Fashion-MNIST ------------------------------------------------------------------------
def read_idx(path: Path) -> NDArray[np.uint8]:
    """An IDX file (gzip or plain) of unsigned bytes (format: yann.lecun.com/exdb/mnist)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: not an IDX file (bad magic)")
    if raw[2] != 0x08:
        raise DataError(f"{path}: IDX type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    n = int(np.prod(shape))
    if len(raw) - header != n:
        raise DataError(f"{path}: header says {shape} ({n} bytes) but {len(raw) - header} bytes follow")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _download(url: str, dest: Path) -> None:
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=30) as r, atomic_open(dest, "wb") as f:
            total = int(r.headers.get("Content-Length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError) as e:
        raise DataError(
            f"cannot download {url} ({e}); put the Fashion-MNIST IDX .gz files in a folder and set RRAMCTL_DATA to it"
        ) from e


def fmnist_dir(download_to: Path | None = None, data_dir: Path | None = None) -> Path:
    """Where the Fashion-MNIST IDX files are: ``data_dir``(/fashion-mnist) and only there when it is given (a data
    folder the user named is never swapped for another one), else $RRAMCTL_DATA(/fashion-mnist), else the Debian
    package; not found: downloaded to ``download_to``, or an error without it."""
    names = [n for pair in FMNIST_FILES.values() for n in pair]
    candidates: list[Path] = []
    if data_dir is not None:
        candidates += [Path(data_dir), Path(data_dir) / "fashion-mnist"]
    else:
        env = os.environ.get("RRAMCTL_DATA")
        if env:
            candidates += [Path(env), Path(env) / "fashion-mnist"]
        candidates.append(FMNIST_SYSTEM_DIR)
    for c in candidates:
        if all((c / n).exists() for n in names):
            return c
    if download_to is None:
        where = "put them in --data-dir (data.data_dir)" if data_dir is not None else "set RRAMCTL_DATA"
        raise DataError(
            f"Fashion-MNIST IDX files not found in {', '.join(map(str, candidates))}; {where} or allow download"
        )
    for n in names:
        if not (download_to / n).exists():
            _download(FMNIST_MIRROR + n, download_to / n)
    return download_to


def pool(images: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """2x2 max-pool (28x28 -> 14x14, seed 000 Results), (N, H, W) -> (N, 1, H/2, W/2)."""
    n, h, w = images.shape
    if h % 2 or w % 2:
        raise DataError(f"images must have even sides for 2x2 pooling, got {h}x{w}")
    return images.reshape(n, h // 2, 2, w // 2, 2).max(axis=(2, 4))[:, None, :, :]


def pool_and_quantise(images: NDArray[np.uint8], bits: int = FMNIST_BITS) -> NDArray[np.int64]:
    """2x2 max-pool then keep the top ``bits`` bits of each 8-bit pixel."""
    return pool(images).astype(np.int64) >> (8 - bits)


def load_fmnist(root: Path | None = None, download_to: Path | None = None, data_dir: Path | None = None) -> Dataset:
    root = root or fmnist_dir(download_to, data_dir)
    splits = {}
    for split, (img_name, lab_name) in FMNIST_FILES.items():
        images = read_idx(root / img_name)
        labels = read_idx(root / lab_name).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{root}: expected images (N, H, W) and labels (N,), got {images.shape} {labels.shape}")
        pooled = pool(images)
        splits[split] = Split(pooled.astype(np.int64) >> (8 - FMNIST_BITS), labels, FMNIST_BITS,
                              (pooled / np.float32(255)).astype(np.float32))  # fmt: skip
    return Dataset("fmnist", splits["train"], splits["test"])


# ---- Free Spoken Digit Dataset --------------------------------------------------------------
def fsdd_dir(data_dir: Path | None = None) -> Path:
    """``data_dir`` (else $RRAMCTL_DATA) /fsdd/recordings, /recordings, or the folder itself."""
    env = str(data_dir) if data_dir is not None else os.environ.get("RRAMCTL_DATA")
    if not env:
        raise DataError(
            "spoken digits: set RRAMCTL_DATA to a folder holding FSDD recordings ({digit}_{speaker}_{i}.wav)"
        )
    for c in (Path(env) / "fsdd" / "recordings", Path(env) / "recordings", Path(env)):
        if c.is_dir() and any(FSDD_NAME.match(p.name) for p in c.iterdir()):
            return c
    raise DataError(f"no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) under {env}")


def mfcc_map(audio: NDArray[np.floating], sr: int = FSDD_SAMPLE_RATE) -> NDArray[np.float64]:
    """A raw 23 x 15 MFCC map (coefficients x frames).

    (ours) the hop length is chosen per recording so that every recording spans exactly 15 frames
    (seed 000 gives only the 23 x 15 size)."""
    try:
        import librosa
    except ImportError as e:  # pragma: no cover - depends on the install
        raise DataError("spoken digits need librosa: pip install 'rramctl[audio]'") from e
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1 or y.size < 64:
        raise DataError(f"audio must be a mono signal of at least 64 samples, got shape {y.shape}")
    hop = int(np.ceil(y.size / MFCC_FRAMES))
    n_fft = 512  # ours: 64 ms at 8 kHz
    m = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=MFCC_COEFFS, n_fft=n_fft, hop_length=hop, n_mels=40, center=True)
    m = m[:, :MFCC_FRAMES]
    if m.shape[1] < MFCC_FRAMES:
        m = np.pad(m, ((0, 0), (0, MFCC_FRAMES - m.shape[1])), mode="edge")
    return m.astype(np.float64)


def scale_mfcc(
    train: NDArray[np.float64], *others: NDArray[np.float64], spread: float = 2.5
) -> list[NDArray[np.float64]]:
    """Per-coefficient scaling to [0, 1] with the training set's statistics (ours): mean - spread*std -> 0,
    mean + spread*std -> 1, clipped. Maps are (N, 23, 15)."""
    mu = train.mean(axis=(0, 2), keepdims=True)
    sd = train.std(axis=(0, 2), keepdims=True) + 1e-9
    return [np.clip((a - mu) / (2 * spread * sd) + 0.5, 0.0, 1.0) for a in (train, *others)]


def quantise_unit(x: NDArray[np.floating], bits: int) -> NDArray[np.int64]:
    """Values in [0, 1] to integers 0 .. 2**bits - 1 (round to nearest level)."""
    levels = 2**bits - 1
    return np.clip(np.rint(np.asarray(x) * levels), 0, levels).astype(np.int64)


def load_fsdd(root: Path | None = None, data_dir: Path | None = None) -> Dataset:
    root = root or fsdd_dir(data_dir)
    files = sorted(p for p in root.iterdir() if FSDD_NAME.match(p.name))
    if not files:
        raise DataError(f"no FSDD recordings in {root}")
    cache = _mfcc_cache_file(files)
    cached = None
    if cache is not None and cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as d:
                cached = d["mfcc"], d["digit"], d["test"]
        except READ_ERRORS:
            cached = None  # a damaged cache is extracted again (and rewritten)
    if cached is not None:
        raw, digits, is_test = cached
    else:
        raw, digits, is_test = _extract_fsdd(files)
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_with(cache, lambda f: np.savez(f, mfcc=raw, digit=digits, test=is_test))
            except OSError:
                pass  # a read-only cache only costs the extraction next time
    if is_test.all() or not is_test.any():
        raise DataError(f"{root}: need recordings with index 0-4 (test) and >= 5 (train)")
    train, test = scale_mfcc(raw[~is_test], raw[is_test])

    def split(x: NDArray[np.float64], test: bool) -> Split:
        y = digits[is_test] if test else digits[~is_test]
        return Split(quantise_unit(x, FSDD_BITS)[:, None, :, :], y.astype(np.int64), FSDD_BITS,
                     x[:, None, :, :].astype(np.float32))  # fmt: skip

    return Dataset("fsdd", split(train, False), split(test, True))


def load_paper_features(path: Path) -> Dataset:
    """The paper's own spoken-digit features (its public code's npz converted to plain arrays): ``X_train``
    (N, 23, 20) in [0, 1], ``y_train``, ``X_test``, ``y_test``; codes by rounding to the 3-bit levels."""
    try:
        with np.load(path, allow_pickle=False) as d:
            arrays = {k: d[k] for k in ("X_train", "y_train", "X_test", "y_test")}
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{path}: not a feature file with X_train, y_train, X_test, y_test: {e}") from e

    def split(x: NDArray[np.floating], y: NDArray[np.integer]) -> Split:
        if x.ndim != 3 or len(x) != len(y) or x.min() < 0 or x.max() > 1:
            raise DataError(f"{path}: features must be (N, H, W) in [0, 1] with one label each, got {x.shape}")
        return Split(quantise_unit(x, FSDD_BITS)[:, None], y.astype(np.int64), FSDD_BITS,
                     x[:, None].astype(np.float32))  # fmt: skip

    return Dataset("fsdd-paper", split(arrays["X_train"], arrays["y_train"]), split(arrays["X_test"], arrays["y_test"]))


def _mfcc_cache_file(files: list[Path]) -> Path | None:
    """$RRAMCTL_CACHE or ~/.cache/rramctl: raw MFCC maps keyed by the recordings (name, size, mtime) and the
    feature settings (ours: extraction takes minutes, loading a second).  RRAMCTL_CACHE=off disables it."""
    where = os.environ.get(
        "RRAMCTL_CACHE", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rramctl")
    )
    if where == "off":
        return None
    h = hashlib.sha256(f"mfcc v1 {MFCC_COEFFS} {MFCC_FRAMES} {FSDD_SAMPLE_RATE}".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.name} {st.st_size} {st.st_mtime_ns}\n".encode())
    return Path(where) / f"fsdd-mfcc-{h.hexdigest()[:16]}.npz"


def _extract_fsdd(files: list[Path]) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.bool_]]:
    """Raw MFCC maps (N, 23, 15), digits and test flags of FSDD recordings."""
    import soundfile as sf
    from tqdm import tqdm

    maps, digits, is_test = [], [], []
    for p in tqdm(files, desc="MFCC", unit="wav", leave=False, disable=None):
        m = FSDD_NAME.match(p.name)
        assert m is not None
        digit, index = int(m.group(1)), int(m.group(3))
        try:
            audio, sr = sf.read(p, dtype="float32", always_2d=False)
        except RuntimeError as e:
            raise DataError(f"{p}: cannot read WAV: {e}") from e
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        if sr != FSDD_SAMPLE_RATE:
            raise DataError(f"{p}: sample rate {sr} Hz, expected {FSDD_SAMPLE_RATE} Hz")
        maps.append(mfcc_map(audio, sr))
        digits.append(digit)
        is_test.append(index in FSDD_TEST_INDICES)
    return np.stack(maps), np.array(digits, dtype=np.int64), np.array(is_test, dtype=bool)


def load_task_data(
    task: str,
    download_to: Path | None = None,
    data_dir: Path | None = None,
    source: str = "standard",
    features_file: Path | None = None,
) -> Dataset:
    """A task's data: Fashion-MNIST, spoken digits from recordings, or the paper's feature file (``source``)."""
    if task == "fsdd-crnn" and source == "paper-features":
        if features_file is None:
            raise DataError("the paper's spoken-digit features need a features file")
        return load_paper_features(features_file)
    if task == "fmnist-cnn":
        return load_fmnist(download_to=download_to, data_dir=data_dir)
    if task == "fsdd-crnn":
        return load_fsdd(data_dir=data_dir)
    raise DataError(f"unknown task {task!r}; choose fmnist-cnn or fsdd-crnn")
