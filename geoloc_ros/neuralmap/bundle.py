"""A trained neural map localizer on disk: safetensors weights + a JSON card, sha256-checked.

    MODEL_DIR/neuralmap.json          card: config, calibration, training, metrics, file hashes
    MODEL_DIR/neuralmap.safetensors   net.* tensors (no pickle)
    MODEL_DIR/bev.onnx, map.onnx      optional, from `geoloc export neuralmap`

Unlike PoseNet the model is not tied to an area: the area lives in the map folder
(`geoloc map build`), which records the sha256 of the model that encoded it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.modelcard import CardedModel, load_checked_safetensors, read_card
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

    def carried(self, cov_raw: np.ndarray, cov_volume_xy: np.ndarray | None,
                multimodal) -> np.ndarray:  # fmt: skip
        """The (..., 3, 3) covariances fixes carry: calibrated mode moments, except that a
        multi-modal fix's position block is the whole window's moments about its mode
        (every hypothesis in it, uncalibrated), plus the floor.

        The mode's moments describe one hypothesis; a flagged fix may be another place
        altogether (car, five unseen worlds: 42 % of flagged fixes within 5 m), and its
        covariance should say so rather than leave that to the flag alone.
        """
        c = self.apply(cov_raw)
        if cov_volume_xy is None:
            return c
        flagged = np.asarray(multimodal, bool)
        vol = np.asarray(cov_volume_xy, float)
        use = flagged & np.all(np.isfinite(vol), axis=(-2, -1))
        c[use, :2, :2] = vol[use] + np.eye(2) * self.floor_xy_m**2
        return c

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        from geoloc_ros.config import from_mapping  # noqa: PLC0415

        return from_mapping(cls, d, "model card calibration")  # strict: unknown keys refused


@dataclass
class NeuralMapBundle(CardedModel):
    CARD: ClassVar[str] = CARD
    WEIGHTS: ClassVar[str] = WEIGHTS
    KIND: ClassVar[str] = "neuralmap"
    FORMAT: ClassVar[int] = FORMAT
    WHAT: ClassVar[str] = "the model"
    EXPORT: ClassVar[str] = "geoloc export neuralmap"

    config: NeuralMapConfig
    state: dict[str, np.ndarray]
    calibration: Calibration = field(default_factory=Calibration)
    directory: Path | None = None
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def card_body(self) -> dict:
        return {"config": self.config.to_dict(), "calibration": self.calibration.to_dict(),
                "training": self.training, "metrics": self.metrics}  # fmt: skip


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
