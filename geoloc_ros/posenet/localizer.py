"""PoseNetLocalizer: camera image -> calibrated 6-DoF PoseFix, the same object online and offline.

The backbone runs once; N dropout samples of the head run as one batch. The mean pose
and the sample covariance (then the calibration of the model card) make the fix; a fix
whose horizontal sigma exceeds `max_sigma_m` is withheld, not published.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.posenet.bundle import PoseNetBundle, load_bundle
from geoloc_ros.posenet.data import prepare_image, to_input_array
from geoloc_ros.posenet.mc import decode, mean_pose, sample_covariance
from geoloc_ros.types import PoseFix

SHIPPED_MODELS = {"car": "posenet_demo", "drone": "posenet_demo_drone"}
"""The models trained for the demo world per platform, installed with the package."""


def shipped_model_dir(platform: str = "car") -> Path:
    """The demo-world model for `platform` (car: forward camera; drone: nadir camera)."""
    if platform not in SHIPPED_MODELS:
        raise ConfigError(f"platform must be one of {', '.join(SHIPPED_MODELS)}, got {platform!r}")
    return Path(str(resources.files("geoloc_ros") / "models" / SHIPPED_MODELS[platform]))


def dropout_masks(rng: np.random.Generator, n: int, cfg) -> np.ndarray:
    """Inverted-dropout masks (n, hidden), float32, keep probability 1 - p."""
    keep = np.float32(1.0 - cfg.dropout)
    return (rng.random((n, cfg.hidden), dtype=np.float32) < keep).astype(np.float32) / keep


def mc_pose(runner, cfg, feat: np.ndarray, rng: np.random.Generator, n: int):
    """Mean pose and MC sample covariance (6x6, ROS order) from one frame's (1, D) features.

    The head's first layer runs once on the (1, D) features, broadcast to the n masks.
    """
    p, q, cov, _ = mc_pose_outputs(runner, cfg, feat, rng, n)
    return p, q, cov


def mc_pose_outputs(runner, cfg, feat: np.ndarray, rng: np.random.Generator, n: int):
    """`mc_pose` plus the raw (n, out_dim) head outputs (for anchor statistics)."""
    out = runner.head(feat, dropout_masks(rng, n, cfg))
    s = decode(out, cfg)
    p, q = mean_pose(s)
    return p, q, sample_covariance(s, p, q), out


@dataclass(frozen=True)
class PoseNetParams:
    model: str = ""  # model folder; "" = the shipped demo-world model for `platform`
    platform: str = "car"  # car | drone: which shipped model "" means
    backend: str = "torch"  # torch | onnxruntime | tensorrt
    device: str = "cpu"  # cpu | cuda (torch, onnxruntime)
    samples: int = 32  # MC dropout samples of the head
    max_sigma_m: float = 15.0  # withhold fixes whose horizontal 1-sigma exceeds this
    seed: int = 0  # of the dropout masks, for reproducible replays
    threads: int = 0  # CPU threads of the backend; 0 = its default (all cores)

    def __post_init__(self) -> None:
        if not 2 <= self.samples <= 1024:
            raise ConfigError(f"samples must be in [2, 1024], got {self.samples}")
        if not self.max_sigma_m > 0:
            raise ConfigError(f"max_sigma_m must be positive, got {self.max_sigma_m}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if self.platform not in SHIPPED_MODELS:
            raise ConfigError(f"platform must be car or drone, got {self.platform!r}")


@dataclass(frozen=True)
class PoseNetNodeConfig(PoseNetParams):
    """The localizer's parameters (PoseNetParams) plus what only the node needs."""

    datum: list[float] = field(default_factory=list)  # map origin [lat, lon, alt]; checked
    map_frame: str = "map"
    max_rate_hz: float = 0.0  # localize at most this often (by image stamps); 0 = every frame

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.max_rate_hz >= 0:
            raise ConfigError(f"max_rate_hz must be >= 0, got {self.max_rate_hz}")

    def params(self) -> PoseNetParams:
        return PoseNetParams(**{f.name: getattr(self, f.name) for f in fields(PoseNetParams)})


@dataclass(frozen=True)
class PoseNetResult:
    fix: PoseFix
    cov_raw_6x6: np.ndarray  # MC sample covariance (x novelty factor) before calibration
    sigma_h_m: float  # calibrated horizontal 1-sigma, sqrt of the mean x/y variance
    withheld: bool
    novelty_gain: float = 1.0  # variance factor for features unlike the training images


class PoseNetLocalizer:
    def __init__(self, bundle: PoseNetBundle, runner, params: PoseNetParams) -> None:
        self.bundle = bundle
        self.runner = runner
        self.params = params
        self.cfg = bundle.config
        self._rng = np.random.default_rng(params.seed)
        self.novelty = bundle.novelty

    @classmethod
    def from_params(cls, params: PoseNetParams) -> PoseNetLocalizer:
        from geoloc_ros.runtime.posenet_backends import make_runner  # noqa: PLC0415

        bundle = load_bundle(params.model or shipped_model_dir(params.platform))
        runner = make_runner(bundle, params.backend, params.device, params.threads)
        return cls(bundle, runner, params)

    def masks(self, n: int) -> np.ndarray:
        return dropout_masks(self._rng, n, self.cfg)

    def localize(self, image: np.ndarray, t_s: float, frame_id: str = "map") -> PoseNetResult:
        """The calibrated fix of base_link in the map frame for one image (any size)."""
        x = prepare_image(image, self.cfg.input_hw, self.cfg.channels)
        feat = self.runner.features(to_input_array(x[None]))
        # novelty variance factor: 1 unless the features are unlike the training images
        gain = float(self.novelty.inflation(feat)[0]) if self.novelty is not None else 1.0
        p, q, cov_raw = mc_pose(self.runner, self.cfg, feat, self._rng, self.params.samples)
        cov_raw = cov_raw * gain
        cov = self.bundle.calibration.apply(cov_raw)
        sigma_h = float(np.sqrt(0.5 * (cov[0, 0] + cov[1, 1])))
        fix = PoseFix(t_s, p, q, cov, frame_id, "base_link", 6, "posenet")
        return PoseNetResult(fix, cov_raw, sigma_h, sigma_h > self.params.max_sigma_m, gain)
