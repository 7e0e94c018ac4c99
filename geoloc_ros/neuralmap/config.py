"""Architecture and geometry of a neural map localizer, as stored in its model card.

One config describes one platform: a forward car camera lifted through a learned
depth distribution, or a drone camera ortho-rectified from attitude and height.
Distances are metres, the BEV grid is in the gravity-aligned base frame
(x forward, y left), cells are `res_m` square, like the neural map.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from geoloc_ros.errors import ConfigError

PLATFORMS = ("car", "drone")


@dataclass(frozen=True)
class NeuralMapConfig:
    platform: str = "car"
    input_hw: tuple[int, int] = (240, 320)  # network input; the image is resized to it
    feat_stride: int = 4  # image features per input pixel
    image_channels: int = 32  # image encoder output
    match_channels: int = 8  # BEV and map features that are correlated
    res_m: float = 0.5  # BEV and neural map cell size
    # car: BEV x in [0, depth_max_m), y in [-half_width_m, half_width_m)
    depth_max_m: float = 32.0
    half_width_m: float = 16.0
    depth_bins: int = 32  # polar grid: linear depth bins over (0, depth_max_m]
    # drone: square BEV of this side centred under the camera
    drone_side_m: float = 48.0
    map_channels_in: int = 3  # orthophoto RGB

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ConfigError(f"platform must be one of {PLATFORMS}, got {self.platform!r}")
        if self.feat_stride not in (2, 4):
            raise ConfigError(f"feat_stride must be 2 or 4, got {self.feat_stride}")
        h, w = self.input_hw
        m = 4 * self.feat_stride  # the image encoder halves twice more below the stride
        if h % m or w % m or h < 32 or w < 32:
            raise ConfigError(f"input_hw must be multiples of {m}, >= 32, got {self.input_hw}")
        if not 0.1 <= self.res_m <= 2.0:
            raise ConfigError(f"res_m must be in [0.1, 2] m, got {self.res_m}")
        for name in ("depth_max_m", "half_width_m", "drone_side_m"):
            if getattr(self, name) < 4 * self.res_m:
                raise ConfigError(f"{name} is smaller than 4 cells")
        if self.depth_max_m / self.depth_bins > self.res_m:
            raise ConfigError("depth bins must be no coarser than the BEV cells")
        if self.depth_bins < 4 or min(self.image_channels, self.match_channels) < 1:
            raise ConfigError("depth_bins >= 4 and positive channel counts are required")

    @property
    def bev_shape(self) -> tuple[int, int]:
        """(cells along x, cells along y) of the BEV in the base frame."""
        if self.platform == "car":
            return round(self.depth_max_m / self.res_m), round(2 * self.half_width_m / self.res_m)
        n = round(self.drone_side_m / self.res_m)
        return n, n

    @property
    def bev_origin_m(self) -> tuple[float, float]:
        """(x, y) of the corner of BEV cell (0, 0) (its low-x, low-y edge) in the base frame."""
        if self.platform == "car":
            return 0.0, -self.half_width_m
        return -self.drone_side_m / 2, -self.drone_side_m / 2

    @property
    def template_size(self) -> int:
        """Odd side of the rotated template: the BEV's farthest cell from base_link fits."""
        nx, ny = self.bev_shape
        x0, y0 = self.bev_origin_m
        corners = [(x, y) for x in (x0, x0 + nx * self.res_m) for y in (y0, y0 + ny * self.res_m)]
        r = max((x * x + y * y) ** 0.5 for x, y in corners)
        return 2 * int(r / self.res_m + 1) + 1

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> NeuralMapConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown neural map config keys: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def for_platform(cls, platform: str, **kw) -> NeuralMapConfig:
        """The CPU-trainable defaults: 1 m cells (sub-cell pose from the volume's local
        expectation), a 120x160 car input and a 176x240 drone input, both at stride 2."""
        base = {"res_m": 1.0, "feat_stride": 2}
        if platform == "drone":
            base["input_hw"] = (176, 240)
        else:
            base["input_hw"] = (120, 160)
        return cls(platform=platform, **{**base, **kw})
