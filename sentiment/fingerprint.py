"""One fingerprint for a local model directory: a sha256 over the names and contents of the files that decide its
outputs (config, weights, tokenizer). A model retrained in place gets a new fingerprint, and so a new model id;
renaming or touching files without changing them does not."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: the files that decide a model's outputs (the set and the hashing below are what ``transformer:<dir>`` ids were
#: always computed from, so existing ids stay valid)
MODEL_SUFFIXES = frozenset({".json", ".safetensors", ".bin", ".txt", ".model"})


def dir_fingerprint(path: Path) -> str:
    """sha256 (hex) over the sorted model files directly in ``path``: each file's name, then its bytes."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES):
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()
