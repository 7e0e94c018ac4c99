"""JSON cards that describe a folder (model or map) and name its sha256-checked files.

PoseNet models, neural map models and neural map folders share this: one reader that
refuses a missing, malformed or foreign card, and one safetensors loader that checks
the hash the card records before reading a byte of weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from geoloc_ros.checksum import verify_sha256
from geoloc_ros.errors import ConfigError


def read_card(path: Path, kind: str, fmt: int, what: str, hint: str = "") -> dict:
    """The card at `path`, which must be valid JSON of this kind and format."""
    if not path.is_file():
        raise ConfigError(f"{path} not found: {hint or f'not a {what} folder'}")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if card.get("kind") != kind or card.get("format") != fmt:
        raise ConfigError(f"{path} is not a format-{fmt} {what} card")
    return card


def load_checked_safetensors(directory: Path, card: dict, name: str) -> dict[str, np.ndarray]:
    """Tensors of `directory/name` after checking its sha256 against the card's `files`."""
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.numpy import load_file  # noqa: PLC0415

    files = card.get("files", {})
    if name not in files:
        raise ConfigError(f"the card in {directory} names no {name}")
    verify_sha256(directory / name, files[name])
    try:
        return load_file(str(directory / name))
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"cannot read {directory / name}: {exc}") from None
