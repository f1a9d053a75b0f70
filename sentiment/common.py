"""Small helpers shared by the model files the project writes (weights next to a provenance record)."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_npz_reproducible(path: Path, arrays: Mapping[str, np.ndarray]) -> str:
    """Write ``arrays`` as a compressed ``.npz`` with fixed zip timestamps and the given key order, so the same
    arrays always give the same bytes (and so the same fingerprint); return the file's sha256.

    ``np.load`` reads it like any ``np.savez_compressed`` file. No pickles: object arrays are refused.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)
    tmp.replace(path)
    return sha256_file(path)
