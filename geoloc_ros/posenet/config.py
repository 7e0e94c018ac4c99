"""PoseNet's architecture and input/output conventions: plain data, no torch.

Kept apart from the network (posenet/model.py) so that loading a model card, and the
onnxruntime and TensorRT backends, never import torch (2.6 s and its thread pool).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from geoloc_ros.errors import ConfigError


@dataclass(frozen=True)
class PoseNetConfig:
    """Architecture and the input/output conventions a trained model was built with."""

    input_hw: tuple[int, int] = (120, 160)  # network input, resized from the camera image
    channels: int = 3  # 3 = RGB, 1 = mono
    widths: tuple[int, ...] = (16, 32, 64, 96, 128)  # stem, then one residual stage each
    feature_channels: int = 64  # 1x1 reduction before flattening the spatial map
    hidden: int = 512
    dropout: float = 0.3
    p_mean_m: tuple[float, float, float] = (0.0, 0.0, 0.0)  # ENU position normalisation
    p_scale_m: tuple[float, float, float] = (1.0, 1.0, 1.0)
    anchors_xy_m: tuple[tuple[float, float], ...] = ()  # K anchor positions (ENU); () = none
    anchor_scale_m: float = 1.0  # offsets are regressed in this unit
    extra: dict = field(default_factory=dict)  # free-form, not used by the network

    @property
    def n_anchors(self) -> int:
        return len(self.anchors_xy_m)

    @property
    def out_dim(self) -> int:
        return 3 * self.n_anchors + 5 if self.n_anchors else 7

    def __post_init__(self) -> None:
        h, w = self.input_hw
        if h < 32 or w < 32 or h % 8 or w % 8:
            raise ConfigError(f"input_hw must be multiples of 8, >= 32, got {self.input_hw}")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}")
        if not 0.0 < self.dropout < 1.0:
            raise ConfigError(f"dropout must be in (0, 1), got {self.dropout}")
        if len(self.widths) < 2 or min(self.widths) < 4:
            raise ConfigError(f"widths must list >= 2 positive stage widths, got {self.widths}")
        if min(self.p_scale_m) <= 0:
            raise ConfigError(f"p_scale_m must be positive, got {self.p_scale_m}")

    @property
    def feature_hw(self) -> tuple[int, int]:
        n = len(self.widths)
        h, w = self.input_hw
        for _ in range(n):
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    @property
    def feature_dim(self) -> int:
        h, w = self.feature_hw
        return self.feature_channels * h * w

    def to_dict(self) -> dict:
        return json_ready(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> PoseNetConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown PoseNet config keys: {sorted(unknown)}")
        tuples = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v)
                  for k, v in d.items() if isinstance(v, list)}  # fmt: skip
        return cls(**{**d, **tuples})


def json_ready(d: dict) -> dict:
    def lists(v):
        return [lists(x) for x in v] if isinstance(v, (tuple, list)) else v

    return {k: lists(v) for k, v in d.items()}
