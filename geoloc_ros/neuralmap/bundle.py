"""A trained neural map localizer on disk: safetensors weights + a JSON card, sha256-checked.

    MODEL_DIR/neuralmap.json          card: config, calibration, training, metrics, file hashes
    MODEL_DIR/neuralmap.safetensors   net.* tensors (no pickle)
    MODEL_DIR/bev.onnx, map.onnx      optional, from `geoloc export neuralmap`

Unlike PoseNet the model is not tied to an area: the area lives in the map folder
(`geoloc map build`), which records the sha256 of the model that encoded it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoloc_ros.checksum import sha256_of, verify_sha256
from geoloc_ros.errors import ConfigError
from geoloc_ros.modelcard import load_checked_safetensors, read_card
from geoloc_ros.neuralmap.config import NeuralMapConfig

CARD = "neuralmap.json"
WEIGHTS = "neuralmap.safetensors"
FORMAT = 1


@dataclass
class Calibration:
    """Covariance inflation fitted on val so the 95 % region holds 95 % of true poses."""

    scale_xy: float = 1.0
    scale_yaw: float = 1.0
    floor_xy_m: float = 0.25
    floor_yaw_deg: float = 0.5

    def apply(self, cov_raw: np.ndarray) -> np.ndarray:
        """Calibrated copy of (..., 3, 3) raw (x, y, yaw) covariances."""
        c = np.array(cov_raw, dtype=float)
        c[..., :2, :2] = c[..., :2, :2] * self.scale_xy + np.eye(2) * self.floor_xy_m**2
        c[..., 2, 2] = c[..., 2, 2] * self.scale_yaw + np.radians(self.floor_yaw_deg) ** 2
        return c

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown calibration keys: {sorted(unknown)}")
        return cls(**d)


@dataclass
class NeuralMapBundle:
    config: NeuralMapConfig
    state: dict[str, np.ndarray]
    calibration: Calibration = field(default_factory=Calibration)
    directory: Path | None = None
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def save(self, directory: str | Path) -> Path:
        from safetensors.numpy import save_file  # noqa: PLC0415

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.state.items()}, str(d / WEIGHTS))
        self.files[WEIGHTS] = sha256_of(d / WEIGHTS)
        self.directory = d
        self.write_card()
        return d

    def add_file(self, name: str) -> None:
        if self.directory is None:
            raise ConfigError("save the bundle before adding files to it")
        self.files[name] = sha256_of(self.directory / name)
        self.write_card()

    def write_card(self) -> None:
        card = {
            "format": FORMAT,
            "kind": "neuralmap",
            "config": self.config.to_dict(),
            "calibration": self.calibration.to_dict(),
            "files": self.files,
            "training": self.training,
            "metrics": self.metrics,
        }
        (self.directory / CARD).write_text(json.dumps(card, indent=1, sort_keys=True))

    def path(self, name: str) -> Path:
        if self.directory is None or name not in self.files:
            raise ConfigError(f"the model has no {name}; run `geoloc export neuralmap`")
        p = self.directory / name
        verify_sha256(p, self.files[name])
        return p

    @property
    def weights_sha256(self) -> str:
        return self.files.get(WEIGHTS, "")


def load_bundle(directory: str | Path) -> NeuralMapBundle:
    d = Path(directory)
    card = read_card(d / CARD, "neuralmap", FORMAT, "neural map model")
    files = card.get("files", {})
    state = load_checked_safetensors(d, card, WEIGHTS)
    return NeuralMapBundle(
        config=NeuralMapConfig.from_dict(card["config"]),
        state=state,
        calibration=Calibration.from_dict(card.get("calibration", {})),
        directory=d,
        training=card.get("training", {}),
        metrics=card.get("metrics", {}),
        files=files,
    )


def build_net(bundle: NeuralMapBundle):
    """NeuralMapNet with the bundle's weights, in eval mode."""
    import torch  # noqa: PLC0415

    from geoloc_ros.neuralmap.model import NeuralMapNet  # noqa: PLC0415

    net = NeuralMapNet(bundle.config)
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in bundle.state.items()}
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"weights do not fit the card's architecture: {exc}") from None
    return net.eval()


def state_of(module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}
