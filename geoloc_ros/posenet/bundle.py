"""A trained PoseNet on disk: safetensors weights + a JSON card, checked by sha256.

    MODEL_DIR/posenet.json          card: config, area, calibration, training, metrics,
                                    sha256 of every file it names
    MODEL_DIR/posenet.safetensors   backbone.* and head.* tensors (no pickle)
    MODEL_DIR/backbone.onnx, head.onnx   optional, from `geoloc export posenet`

The card is the only entry point: a weights file whose hash differs from the card's
is refused (corrupt download, a file swapped by hand), and so is a card naming
another area than the one the caller works in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.modelcard import CardedModel, load_checked_safetensors, read_card
from geoloc_ros.posenet.config import PoseNetConfig
from geoloc_ros.posenet.mc import Calibration

CARD = "posenet.json"
WEIGHTS = "posenet.safetensors"
FORMAT = 2  # 2: hidden-layer dropout only, head(features, mask_hidden); 1 had input dropout
DATUM_TOLERANCE_M = 1.0


@dataclass
class PoseNetBundle(CardedModel):
    """Everything inference needs; `state` maps tensor names to numpy arrays."""

    CARD: ClassVar[str] = CARD
    WEIGHTS: ClassVar[str] = WEIGHTS
    KIND: ClassVar[str] = "posenet"
    FORMAT: ClassVar[int] = FORMAT
    WHAT: ClassVar[str] = "the PoseNet model"
    EXPORT: ClassVar[str] = "geoloc export posenet"

    config: PoseNetConfig
    area: dict
    calibration: Calibration
    state: dict[str, np.ndarray]
    directory: Path | None = None
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256

    @property
    def novelty(self):
        from geoloc_ros.posenet.novelty import NoveltyModel  # noqa: PLC0415

        return NoveltyModel.from_tensors(self.state)

    def card_body(self) -> dict:
        return {"config": self.config.to_dict(), "area": self.area,
                "calibration": self.calibration.to_dict(), "training": self.training,
                "metrics": self.metrics}  # fmt: skip

    def check_area(self, datum: list[float] | None, layout_sha256: str | None = None) -> None:
        """Refuse to localize in an area the model was not trained for."""
        if layout_sha256 and self.area.get("layout_sha256") not in (None, layout_sha256):
            raise ConfigError(
                f"PoseNet was trained for {self.area.get('name')!r} "
                f"(layout {self.area['layout_sha256'][:12]}), not this world "
                f"({layout_sha256[:12]}): train one for this area"
            )
        mine = self.area.get("datum")
        if datum is None or mine is None:
            return
        from geoloc_ros.geo.wgs84 import LocalTangentPlane  # noqa: PLC0415

        off = LocalTangentPlane(*mine).enu_from_geodetic(*datum)
        if np.linalg.norm(off) > DATUM_TOLERANCE_M:
            raise ConfigError(
                f"PoseNet's map origin {mine} is {np.linalg.norm(off):.0f} m from the "
                f"configured datum {list(datum)}: weights for another area"
            )


def load_bundle(directory: str | Path) -> PoseNetBundle:
    """Read and verify a model folder (card, hashes, tensor names and shapes)."""
    d = Path(directory)
    card = read_card(d / CARD, "posenet", FORMAT, "PoseNet model")
    files = card.get("files", {})
    state = load_checked_safetensors(d, card, WEIGHTS)
    return PoseNetBundle(
        config=PoseNetConfig.from_dict(card["config"]),
        area=card.get("area", {}),
        calibration=Calibration.from_dict(card.get("calibration", {})),
        state=state,
        directory=d,
        training=card.get("training", {}),
        metrics=card.get("metrics", {}),
        files=files,
    )


def build_torch_model(bundle: PoseNetBundle):
    """The PoseNet nn.Module with the bundle's weights, in eval mode."""
    import torch  # noqa: PLC0415

    from geoloc_ros.posenet.model import PoseNet  # noqa: PLC0415
    from geoloc_ros.posenet.novelty import PREFIX  # noqa: PLC0415

    model = PoseNet(bundle.config)
    tensors = {k: torch.from_numpy(np.array(v)) for k, v in bundle.state.items()
               if not k.startswith(PREFIX)}  # fmt: skip
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ConfigError(f"PoseNet weights do not fit the card's architecture: {exc}") from None
    if missing or unexpected:
        raise ConfigError(
            f"PoseNet weights do not fit the card's architecture (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    return model.eval()


def state_of(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
