"""The map localizer used by map_localizer_node, `geoloc eval` and the benchmark.

One frame in (image, K, gravity, camera mount, a position prior with its sigma,
optionally a yaw prior and the height above ground), one planar fix out: x, y, yaw
in the `map` frame with a calibrated 3x3 covariance and a multi-modality flag; for a
nadir view with an uncertain height also the height the match measures (neuralmap.height).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.neuralmap.frame import prepare_frame
from geoloc_ros.neuralmap.height import height_factors, refine_height
from geoloc_ros.neuralmap.matcher import (
    YAW_PARABOLA_SPACING_RAD,
    TemplateRotator,
    correlate,
    refine,
    volume_logits,
)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
MODELS = Path(__file__).resolve().parent.parent / "models"


def shipped_model_dir(platform: str) -> Path:
    return MODELS / f"neuralmap_{platform}"


@dataclass(frozen=True)
class MapLocalizerParams:
    model: str = ""  # model folder; "" = the shipped one for `platform`
    map: str = ""  # map folder (geoloc map build)
    platform: str = "car"
    yaw_bins: int = 64
    window_m: float = 64.0  # side of the searched square around the prior
    yaw_prior_deg: float = 15.0  # half-width of the searched yaw range when a yaw prior is given
    # bins over 360 deg inside that range, finer than `yaw_bins` since only the range is
    # searched: a template 2.8 deg off (half a 64-bin step) is 1.5 m off at the BEV's far
    # corner; 256 took the car demo's map-row keyframes 0.300 -> 0.277 m (docs/neuralmap.md)
    yaw_prior_bins: int = 256
    # multi-modal (withheld unless publish_multimodal) when a position peak 6 m or more
    # from the mode is this high against it: at 0.5 a car fix 8 m+ off went out unflagged
    # on 12 % of unseen-world frames, at 0.2 on 4 % (docs/neuralmap.md)
    multimodal_ratio: float = 0.2
    # the yaw is refined by a parabola through the yaw marginal at bins this far apart:
    # 4 deg suits the car's wider marginal (1 deg recall 50 -> 66 % against adjacent bins);
    # the drone's nadir marginal is sharper and takes 2.8 (config/drone.yaml)
    yaw_refine_spacing_deg: float = float(np.degrees(YAW_PARABOLA_SPACING_RAD))
    use_prior: bool = True  # add the Gaussian position prior to the volume
    # drones: heights (1 + step)^k x the prior's are tried, |k| <= max_steps, as far as
    # the prior's height sigma asks (neuralmap.height); 0 = the prior's height alone
    height_search_step: float = 0.05
    height_search_max_steps: int = 4
    device: str = "cpu"
    threads: int = 0
    backend: str = "torch"  # torch | onnxruntime | tensorrt (BEV encoder from bev.onnx)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("yaw_bins", "yaw_prior_bins"):
            if not 4 <= getattr(self, name) <= 1024:
                raise ConfigError(f"{name} must be in [4, 1024], got {getattr(self, name)}")
        if not 4.0 <= self.window_m <= 1024.0:
            raise ConfigError(f"window_m must be in [4, 1024] m, got {self.window_m}")
        if not 0.0 < self.multimodal_ratio <= 1.0:
            raise ConfigError(f"multimodal_ratio must be in (0, 1], got {self.multimodal_ratio}")
        if not 0.0 < self.yaw_refine_spacing_deg <= 45.0:
            raise ConfigError("yaw_refine_spacing_deg must be in (0, 45], got "
                              f"{self.yaw_refine_spacing_deg}")  # fmt: skip
        if not 0.0 < self.yaw_prior_deg <= 180.0:
            raise ConfigError(f"yaw_prior_deg must be in (0, 180], got {self.yaw_prior_deg}")
        if not (0.0 <= self.height_search_step <= 0.5 and 0 <= self.height_search_max_steps <= 10):
            raise ConfigError("need 0 <= height_search_step <= 0.5 and 0 <= "
                              "height_search_max_steps <= 10")  # fmt: skip


WARM_UP_HEIGHT_M = 50.0  # a drone's synthetic warm-up frame: any height above ground works
MIN_IMAGE_INFO_SHARE = 0.25  # the image must bring this share of the fix's information
FREE_VARIANCE_M2 = 1e6  # a direction the image does not inform (as z, roll, pitch on the wire)


@dataclass
class MapFix:
    xy_m: np.ndarray
    yaw_rad: float
    cov_xyyaw: np.ndarray  # 3x3 (m, m, rad), calibrated
    cov_raw_xyyaw: np.ndarray  # the volume's moments before calibration (for fitting it)
    multimodal: bool
    second_peak_ratio: float
    timing_ms: dict = field(default_factory=dict)
    peak_index: tuple[int, int, int] = (0, 0, 0)  # the volume's argmax (yaw bin, row, col)
    cov_xy_volume_m2: np.ndarray | None = None  # whole-window position moments (matcher)
    mode_mass: float = 1.0
    # a searched nadir height: above ground (m) and its variance, the image's evidence
    # alone (no height prior in it); None where the prior's height was taken as given
    height_m: float | None = None
    var_height_m2: float = 0.0
    height_prior_m: float | None = None  # the height given, which the search started from


def divide_out_prior(fix: MapFix, prior_xy, prior_sigma_m: float, calibration,
                     max_yaw_only_sigma_rad: float = 0.0) -> MapFix | None:  # fmt: skip
    """The image's own evidence: `fix` with the isotropic Gaussian position prior that
    weighted its volume divided out (information form, x and y; the raw moments, then
    calibrated again).

    A principal direction along which the image brings under MIN_IMAGE_INFO_SHARE of the
    fix's information is left free (FREE_VARIANCE_M2): a car in a straight street knows
    its cross-street offset and heading, not how far along it is. With both directions
    free the fix goes out for its yaw alone if that yaw's calibrated sigma is within
    `max_yaw_only_sigma_rad`, else None (withheld): standing at the demo's start, the
    image gives the heading to 0.7 deg and the position no better than the prior.

    A fusion that feeds its state in as the prior and takes the fix back as a new
    measurement would count that prior twice; where the image says little (an ambiguous
    view) the fix then follows the state wherever it drifts.
    """
    raw = np.array(fix.cov_raw_xyyaw, float)
    info_post = np.linalg.inv(raw[:2, :2])
    info_prior = np.eye(2) / prior_sigma_m**2
    info_img = info_post - info_prior
    lam, V = np.linalg.eigh(info_img)  # the image's information, by principal direction
    share = lam / np.einsum("ji,jk,ki->i", V, info_post, V)
    keep = share >= MIN_IMAGE_INFO_SHARE
    if keep.any():
        eta = V.T @ (info_post @ fix.xy_m - info_prior @ np.asarray(prior_xy, float))
        lam_kept = np.where(keep, lam, 1.0)
        xy = V @ np.where(keep, eta / lam_kept, V.T @ fix.xy_m)  # free: the fix's own, unweighted
        raw[:2, :2] = V @ np.diag(np.where(keep, 1.0 / lam_kept, FREE_VARIANCE_M2)) @ V.T
    elif np.sqrt(fix.cov_xyyaw[2, 2]) <= max_yaw_only_sigma_rad:
        raw[:2, :2] = np.eye(2) * FREE_VARIANCE_M2
        xy = np.array(fix.xy_m, float)  # carries no weight: the yaw is the news
    else:
        return None
    # what the fix carries beyond its calibrated mode: the tilt term, and a multi-modal
    # fix's spread between hypotheses (Calibration.carried)
    extra = fix.cov_xyyaw[:2, :2] - calibration.apply(fix.cov_raw_xyyaw)[:2, :2]
    cov = calibration.apply(raw)
    cov[:2, :2] += extra
    return dataclasses.replace(fix, xy_m=xy, cov_xyyaw=cov, cov_raw_xyyaw=raw)


class MapLocalizer:
    def __init__(self, params: MapLocalizerParams) -> None:
        import torch  # noqa: PLC0415

        from geoloc_ros.neuralmap.bundle import build_net, load_bundle  # noqa: PLC0415
        from geoloc_ros.neuralmap.tiles import MapStore  # noqa: PLC0415

        if params.threads:
            torch.set_num_threads(params.threads)
        self.params = params
        self.bundle = load_bundle(params.model or shipped_model_dir(params.platform))
        self.cfg = self.bundle.config
        self.device = torch.device(params.device)
        self.net = build_net(self.bundle).to(self.device)
        self.ort = None
        if params.backend != "torch":
            from geoloc_ros.runtime.neuralmap_backends import (  # noqa: PLC0415
                OrtEncoders,
                providers_for,
            )

            cache = str(Path.home() / ".cache" / "geoloc_ros" / "trt")
            providers = providers_for(params.backend, params.device, cache)
            self.ort = OrtEncoders(self.bundle, providers)
        if not params.map:
            raise ConfigError("no map folder given (build one with `geoloc map build`)")
        self.store = MapStore(params.map)
        if abs(self.store.card["res_m"] - self.cfg.res_m) > 1e-9:
            raise ConfigError(
                f"the map has {self.store.card['res_m']} m cells, the model {self.cfg.res_m} m"
            )
        self._full: dict[int, TemplateRotator] = {}  # all yaws of a bin count
        self._rotators: dict[tuple, TemplateRotator] = {}  # yaw-prior ranges, sliced from _full

    def _rotator(self, yaw_hint: float | None) -> TemplateRotator:
        """All `yaw_bins` yaws, or the `yaw_prior_bins` bins within +-yaw_prior_deg of the
        hint (sliced from that bin count's grids, made once)."""
        if yaw_hint is None:
            return self._all_yaws(self.params.yaw_bins)
        k = self.params.yaw_prior_bins
        centre = int(np.round(yaw_hint / (2 * np.pi / k))) % k
        half = int(np.ceil(np.radians(self.params.yaw_prior_deg) / (2 * np.pi / k)))
        key = (k, centre, half)
        if key not in self._rotators:
            if len(self._rotators) > 64:
                self._rotators.clear()
            idx = (centre + np.arange(-half, half + 1)) % k
            self._rotators[key] = self._all_yaws(k).subset(idx)
        return self._rotators[key]

    def yaw_hypotheses_rad(self, yaw_hint: float | None) -> np.ndarray:
        """The yaws a search with this yaw hint (None: no yaw prior) tries, in radians."""
        return self._rotator(yaw_hint).yaws_rad

    def _all_yaws(self, k: int) -> TemplateRotator:
        if k not in self._full:
            self._full[k] = TemplateRotator(self.cfg, k)
        return self._full[k]

    def localize(
        self,
        rgb: np.ndarray,
        K: np.ndarray,
        roll_pitch: tuple[float, float],
        T_base_cam: np.ndarray,
        prior_xy_m: np.ndarray,
        prior_sigma_m: float,
        yaw_prior_rad: float | None = None,
        height_above_ground_m: float | None = None,
        tilt_sigma_rad: float = 0.0,
        height_sigma_m: float = 0.0,
    ) -> MapFix:
        """A fix for one frame; raises InputRejected (no fix) for unusable inputs.

        `tilt_sigma_rad`, the 1-sigma of the roll and pitch given, widens a nadir fix by
        height x tan(sigma): a tilted footprint and a translated one look the same.
        `height_sigma_m`, the prior height's 1-sigma: a nadir view searches heights that
        far (neuralmap.height) and the fix carries the height it found.
        """
        import torch  # noqa: PLC0415

        prior = np.asarray(prior_xy_m, dtype=float)
        if prior.shape != (2,) or not np.all(np.isfinite(prior)):
            raise InputRejected(f"prior position {prior.tolist()} is not finite", reason="prior")
        if not np.isfinite(prior_sigma_m) or prior_sigma_m <= 0:
            raise InputRejected(f"prior sigma {prior_sigma_m} m is not positive", reason="prior")
        if not self.store.contains(prior):
            raise InputRejected(f"prior {prior.round(1).tolist()} m is outside the map",
                                reason="outside_map")  # fmt: skip
        cfg = self.cfg
        factors = np.ones(1)
        if cfg.platform == "drone" and height_above_ground_m is not None:
            factors = height_factors(height_above_ground_m, float(np.nan_to_num(height_sigma_m)),
                                     self.params.height_search_step,
                                     self.params.height_search_max_steps)  # fmt: skip
        ms = dict.fromkeys(("encoder", "lifting", "map_read", "matching", "height_search"), 0.0)
        clock = _Laps(ms)
        dev = self.device
        rot = self._rotator(yaw_prior_rad)
        p = round(self.params.window_m / cfg.res_m)
        h = cfg.template_size // 2
        rc = self.store.grid.cell_of(prior)
        row0, col0 = (np.round(rc).astype(int) - p // 2 - h).tolist()
        vols, evidence, feat = [], [], None
        with torch.inference_mode():
            for i, f in enumerate(factors):
                height = None if height_above_ground_m is None else height_above_ground_m * f
                fr = prepare_frame(rgb, K, cfg, roll_pitch, T_base_cam, height)
                f_bev, conf, feat = self._bev(fr, clock if i == 0 else clock.only("height_search"),
                                              feat)  # fmt: skip
                if i == 0:
                    win = self.store.window(row0, col0, p + 2 * h)
                    fmap = torch.from_numpy(win)[None].to(dev)
                    log_prior = self._log_prior(p, row0 + h - rc[0], col0 + h - rc[1],
                                                prior_sigma_m, dev)  # fmt: skip
                    clock.lap("map_read")
                x = volume_logits(correlate(fmap, rot(f_bev, conf)), self.net.log_scale, log_prior)
                ev = torch.logsumexp(x.flatten(), 0)
                vols.append((x - ev)[0].cpu().numpy())
                evidence.append(float(ev))
                clock.lap("matching" if i == 0 else "height_search")
        best, factor, var_log_h = refine_height(factors, np.array(evidence))
        m = refine(vols[best], rot.yaws_rad, h, cfg.res_m,
                   multimodal_ratio=self.params.multimodal_ratio,
                   yaw_spacing_rad=np.radians(self.params.yaw_refine_spacing_deg))  # fmt: skip
        clock.lap("matching")
        xy = self.store.grid.xy_of(m.row + row0, m.col + col0)
        raw = np.zeros((3, 3))
        raw[:2, :2] = m.cov_xy_m2
        raw[2, 2] = m.var_yaw_rad2
        cov = self.bundle.calibration.carried(raw, m.cov_xy_volume_m2, m.multimodal)
        height_m = None if height_above_ground_m is None else height_above_ground_m * factor
        cov[:2, :2] += np.eye(2) * self._tilt_variance_m2(height_m, tilt_sigma_rad)
        fix = MapFix(xy, m.yaw_rad, cov, raw, m.multimodal, m.second_peak_ratio,
                     peak_index=m.peak_index, cov_xy_volume_m2=m.cov_xy_volume_m2,
                     mode_mass=m.mode_mass)  # fmt: skip
        if len(factors) > 1:
            fix.height_m, fix.height_prior_m = height_m, height_above_ground_m
            fix.var_height_m2 = float(height_m**2 * var_log_h)
        fix.timing_ms = {**ms, "total": sum(ms.values())}
        return fix

    def _log_prior(self, p: int, dr0: float, dc0: float, sigma_m: float, dev):
        """The Gaussian position prior over the p x p window (None without use_prior);
        (dr0, dc0): the first cell's offset from the prior, in cells."""
        import torch  # noqa: PLC0415

        if not self.params.use_prior:
            return None
        rr = np.arange(p) + dr0
        cc = np.arange(p) + dc0
        d2 = (rr[:, None] ** 2 + cc[None, :] ** 2) * self.cfg.res_m**2
        return torch.from_numpy(-0.5 * d2 / sigma_m**2).float()[None].to(dev)

    def warm_up(self, T_base_cam: np.ndarray) -> float:
        """One full-yaw search on a synthetic frame at the map centre; returns its ms.

        The first call pays for kernel set-up, FFT plans and the template grids (680 ms
        against 170-260 ms later, car demo map, 2 cores; the yaw-prior grids of 256 bins
        another 0.4 s): a node pays it before it subscribes, not on the vehicle's first
        frames.
        """
        h, w = self.cfg.input_hw
        K = np.array([[w / 2.0, 0.0, w / 2.0], [0.0, w / 2.0, h / 2.0], [0.0, 0.0, 1.0]])
        rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        card = self.store.card
        centre = self.store.grid.xy_of(card["height"] / 2.0, card["width"] / 2.0)
        height = float(T_base_cam[2, 3]) if self.cfg.platform == "car" else WARM_UP_HEIGHT_M
        t0 = time.perf_counter()
        self.localize(rgb, K, (0.0, 0.0), T_base_cam, centre, 10.0, None, height)
        self._all_yaws(self.params.yaw_prior_bins)  # the grids yaw-prior searches slice
        return 1e3 * (time.perf_counter() - t0)

    def _tilt_variance_m2(self, height_m: float | None, tilt_sigma_rad: float) -> float:
        """Horizontal variance a roll/pitch error puts on a drone fix (0 for cars and
        unknown heights: a forward camera's error is not a rigid shift of the view)."""
        if self.cfg.platform != "drone" or height_m is None or not tilt_sigma_rad > 0:
            return 0.0
        return float((height_m * np.tan(min(tilt_sigma_rad, 1.0))) ** 2)

    def _bev(self, fr, clock: _Laps, feat=None):
        """BEV features, confidence and image features of a prepared frame (torch, or the
        ONNX graph); `feat`, the same image's features from an earlier call, is reused:
        a height search changes only the ortho-rectifying grid."""
        import torch  # noqa: PLC0415

        dev = self.device
        if self.ort is not None:
            f_bev, conf = self.ort.bev(fr.image[None], fr.grid[None], fr.valid[None],
                                      fr.elevation[None])  # fmt: skip
            clock.lap("encoder")  # one graph: counted as encoder
            return torch.from_numpy(f_bev).to(dev), torch.from_numpy(conf).to(dev), None
        if feat is None:
            feat = self.net.image_encoder(torch.from_numpy(fr.image)[None].to(dev))
        clock.lap("encoder")
        src = feat
        if self.net.lifter is not None:
            src = self.net.lifter(feat, torch.from_numpy(fr.elevation)[None].to(dev))
        grid = torch.from_numpy(fr.grid)[None].to(dev)
        bev = torch.nn.functional.grid_sample(src, grid, align_corners=False)
        f_bev, conf = self.net.bev_head(bev, torch.from_numpy(fr.valid)[None, None].to(dev))
        clock.lap("lifting")
        return f_bev, conf, feat


class _Laps:
    """Wall time between laps, summed per name into `ms`; `only(name)` books every lap
    of a stretch under one name (a height search's extra encoder and lifting work)."""

    def __init__(self, ms: dict, name: str | None = None, last: list | None = None) -> None:
        self.ms, self.name = ms, name
        self.last = last if last is not None else [time.perf_counter()]

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        key = self.name or name
        self.ms[key] = self.ms.get(key, 0.0) + 1e3 * (now - self.last[0])
        self.last[0] = now

    def only(self, name: str) -> _Laps:
        return _Laps(self.ms, name, self.last)
