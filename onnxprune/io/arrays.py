"""Read user data arrays safely and check them at the door.

:func:`read_npz` opens an ``.npz`` archive without unpickling anything and turns every way the
file can fail (missing, a folder, a ``.npy`` or pickle instead of an archive, a corrupt zip,
object arrays) into one :class:`~onnxprune.errors.InputError` line naming the file and key.
:func:`check_array` rejects what no model input can take: non-numeric dtypes (object, string,
complex), and NaN/Inf in floating-point data (naming the first bad sample).
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from onnxprune.errors import InputError

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floating point


def read_npz(path: str | Path, what: str = "data") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` by key (``allow_pickle=False``)."""
    path = Path(path)
    prefix = f"{what} '{path}'"
    if not path.exists():
        raise InputError(f"{prefix} does not exist")
    if not path.is_file():
        raise InputError(f"{prefix} is not a file; give an .npz archive")
    if path.stat().st_size == 0:
        raise InputError(f"{prefix} is empty; give an .npz archive")
    with path.open("rb") as handle:
        magic = handle.read(6)
    if magic == b"\x93NUMPY":
        raise InputError(
            f"{prefix} holds a single .npy array, not an .npz archive; save it with "
            "numpy.savez(PATH, INPUT_NAME=array)"
        )
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{prefix} is not an .npz archive (not a zip file; pickles are never loaded); save "
            "it with numpy.savez(PATH, INPUT_NAME=array, labels=labels)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise InputError(
            f"{prefix} is not an .npz archive ({_first_line(error)}); save it with "
            "numpy.savez(PATH, INPUT_NAME=array, labels=labels)"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise InputError(f"cannot read {prefix}: {_first_line(error)}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError(
            f"{prefix} holds a single .npy array, not an .npz archive; save it with "
            "numpy.savez(PATH, INPUT_NAME=array)"
        )
    arrays: dict[str, np.ndarray] = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError as error:
                raise InputError(
                    f"{prefix}: array '{key}' cannot be read without unpickling "
                    f"({_first_line(error)}); store plain numeric arrays"
                ) from None
            except (OSError, EOFError, KeyError, NotImplementedError) as error:
                raise InputError(
                    f"{prefix}: array '{key}' is corrupt: {_first_line(error)}"
                ) from None
            except (zipfile.BadZipFile, zlib.error) as error:
                raise InputError(
                    f"{prefix}: array '{key}' is corrupt: {_first_line(error)}"
                ) from None
    return arrays


def check_array(key: str, array: np.ndarray, source: str) -> None:
    """InputError unless ``array`` is numeric and, if floating point, finite everywhere."""
    if array.dtype.kind not in NUMERIC_KINDS:
        raise InputError(
            f"data '{source}': array '{key}' has dtype {array.dtype}; model inputs need numeric "
            "arrays (float, int or bool)"
        )
    if array.dtype.kind == "f" and array.size:
        bad = first_nonfinite_sample(array)
        if bad is not None:
            raise InputError(
                f"data '{source}': array '{key}' holds NaN or Inf (first in sample {bad}); "
                "remove or fix those samples"
            )


def first_nonfinite_sample(array: np.ndarray) -> int | None:
    """Index along the first axis of the first sample holding NaN or Inf, else None."""
    if array.ndim == 0:
        return None if np.isfinite(array) else 0
    finite = np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
    bad = np.flatnonzero(~finite)
    return int(bad[0]) if bad.size else None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
