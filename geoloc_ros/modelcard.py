"""JSON cards that describe a folder (model or map) and name its sha256-checked files.

PoseNet models, neural map models and neural map folders share this: one reader that
refuses a missing, malformed or foreign card, one safetensors loader that checks the
hash the card records before reading a byte of weights, and (CardedModel) the writing
side of the two model kinds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from geoloc_ros.checksum import sha256_of, verify_sha256
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


class CardedModel:
    """Saving side of a model folder: safetensors weights plus a card naming every file
    with its sha256. Subclasses (dataclasses with `state`, `directory`, `files`) set the
    names below and say what their card holds besides kind, format and files."""

    CARD: ClassVar[str]
    WEIGHTS: ClassVar[str]
    KIND: ClassVar[str]
    FORMAT: ClassVar[int]
    WHAT: ClassVar[str]  # "the PoseNet model", in errors
    EXPORT: ClassVar[str]  # the command that writes the optional files

    state: dict[str, np.ndarray]
    directory: Path | None
    files: dict[str, str]

    def card_body(self) -> dict:
        raise NotImplementedError

    @property
    def weights_sha256(self) -> str:
        return self.files.get(self.WEIGHTS, "")

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file  # noqa: PLC0415

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        weights = d / self.WEIGHTS
        save_file({k: np.ascontiguousarray(v) for k, v in self.state.items()}, str(weights))
        self.files[self.WEIGHTS] = sha256_of(weights)
        self.directory = d
        self.write_card()
        return d

    def add_file(self, name: str) -> None:
        """Record an extra file of the model folder (an ONNX export) in the card."""
        if self.directory is None:
            raise ConfigError("save the bundle before adding files to it")
        self.files[name] = sha256_of(self.directory / name)
        self.write_card()

    def write_card(self) -> None:
        card = {"format": self.FORMAT, "kind": self.KIND, **self.card_body(), "files": self.files}
        (self.directory / self.CARD).write_text(json.dumps(card, indent=1, sort_keys=True))

    def path(self, name: str) -> Path:
        """A checked file of the model (raises if absent from the card or altered)."""
        if self.directory is None or name not in self.files:
            raise ConfigError(f"{self.WHAT} has no {name}; run `{self.EXPORT}`")
        p = self.directory / name
        verify_sha256(p, self.files[name])
        return p
