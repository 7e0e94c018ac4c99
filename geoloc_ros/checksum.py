"""sha256 of a file, read in chunks: world manifests and model cards record it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: str | Path, want: str) -> None:
    """Raise ConfigError when `path` is missing or its sha256 is not `want`."""
    from geoloc_ros.errors import ConfigError  # noqa: PLC0415

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model file {p} is missing")
    got = sha256_of(p)
    if got != want:
        raise ConfigError(
            f"{p} has sha256 {got[:16]}..., the model card says {want[:16]}...: "
            "the file is corrupt or was replaced"
        )
