"""read_npz and check_array: every unusable data file is one InputError naming file and key."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from onnxprune.errors import InputError
from onnxprune.io.arrays import check_array, first_nonfinite_sample, read_npz
from tests.fuzz.corpus import DATA_MUTATIONS


def _error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        read_npz(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    return str(info.value)


def test_reads_plain_archives(tmp_path: Path) -> None:
    path = tmp_path / "ok.npz"
    np.savez(path, x=np.ones((2, 3), np.float32), labels=np.arange(2))
    arrays = read_npz(path)
    assert set(arrays) == {"x", "labels"} and arrays["x"].shape == (2, 3)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("data_not_zip", "not an .npz archive"),
        ("data_pickle_file", "not an .npz archive"),
        ("data_npy_instead", "single .npy array"),  # was a TypeError in `with np.load(...)`
        ("data_object_pickle", "array 'x' cannot be read without unpickling"),
        ("data_empty_file", "is empty"),
    ],
)
def test_unreadable_files(name: str, fragment: str, tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(DATA_MUTATIONS[name](np.random.default_rng(0)))
    assert fragment in _error(path)


def test_missing_and_folder(tmp_path: Path) -> None:
    assert "does not exist" in _error(tmp_path / "missing.npz")
    assert "is not a file" in _error(tmp_path)


def test_pickles_are_never_loaded(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled')",))

    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([Boom()], dtype=object))
    assert "without unpickling" in _error(path)
    path.write_bytes(pickle.dumps(Boom()))
    assert "not an .npz archive" in _error(path)


def test_check_array_names_key_and_first_bad_sample() -> None:
    x = np.zeros((5, 2, 2), np.float32)
    x[3, 1, 0] = np.nan
    x[4, 0, 0] = np.inf
    with pytest.raises(
        InputError, match=r"data 'd.npz': array 'x' holds NaN or Inf \(first in sample 3\)"
    ):
        check_array("x", x, "d.npz")
    with pytest.raises(InputError, match="dtype complex64"):
        check_array("x", np.zeros(3, np.complex64), "d.npz")
    with pytest.raises(InputError, match="dtype <U1"):
        check_array("x", np.array(["a"]), "d.npz")
    check_array("ids", np.arange(4), "d.npz")
    assert first_nonfinite_sample(np.ones((3, 2))) is None
