"""Sensor error models for the simulator: IMU, GNSS receiver and wheel speed.

Each sensor has a frozen config dataclass (defaults and presets next to the code,
validated on construction with ConfigError) and a generator that takes a Trajectory and
an explicit np.random.Generator, so a run is reproducible from its seed. Generators
return batches of arrays that keep the truth next to the measurement (biases, error
vectors, burst flags), so tests and benchmarks can check statistics; `to_samples` /
`to_fixes` convert to the core message types.

Error models, in short:
- IMU: white noise, random-walk biases on top of a turn-on bias, per-axis scale factor
  errors, a mounting rotation imu_link <- base_link; the orientation field carries a
  noisy AHRS estimate (slowly varying error consistent with its reported covariance).
- GNSS: Gauss-Markov plus white error consistent with the reported covariance in open
  sky, receiver latency, antenna lever arm, multipath bursts (biased, heavy-tailed, with
  an optimistic reported covariance) and outages.
- Wheel speed: forward speed of base_link with a scale error and white noise, exactly
  zero when standing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
from scipy.signal import lfilter
from scipy.spatial.transform import Rotation

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import xyzw_from_matrix
from geoloc_ros.geo.wgs84 import A_M, F, LocalTangentPlane
from geoloc_ros.sim.trajectory import STOPPED_MPS, Trajectory
from geoloc_ros.types import CovarianceType, GnssFix, GnssStatus, ImuSample

log = logging.getLogger(__name__)

# exposure(p_enu_m (N, 3)) -> (N,) in [0, 1]: 1 next to tall buildings, 0 in open sky
ExposureFn = Callable[[np.ndarray], np.ndarray]

# WGS84 normal gravity (NIMA TR8350.2, ch. 4)
_GAMMA_E = 9.7803253359  # at the equator [m/s^2]
_SOMIGLIANA_K = 0.00193185265241
_E2 = 0.00669437999013
_M = 0.00344978600308  # omega^2 a^2 b / GM


def normal_gravity_mps2(lat_deg, alt_m=0.0) -> np.ndarray:
    """WGS84 normal gravity [m/s^2]: Somigliana's formula with the second-order free-air term."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    h = np.asarray(alt_m, dtype=np.float64)
    if not (np.isfinite(lat).all() and np.isfinite(h).all()):
        raise ConfigError("normal_gravity_mps2 needs finite latitude and height")
    s2 = np.sin(lat) ** 2
    g0 = _GAMMA_E * (1.0 + _SOMIGLIANA_K * s2) / np.sqrt(1.0 - _E2 * s2)
    return g0 * (1.0 - 2.0 / A_M * (1.0 + F + _M - 2.0 * F * s2) * h + 3.0 * h**2 / A_M**2)


def _check_nonneg(obj: object, names: Sequence[str] | None = None) -> None:
    """Every float field (or those named) must be finite and >= 0."""
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if (names is None or f.name in names) and isinstance(value, (int, float)):
            if isinstance(value, bool):
                continue
            if not (np.isfinite(value) and value >= 0):
                raise ConfigError(
                    f"{type(obj).__name__}.{f.name} must be finite and >= 0, got {value}"
                )


def _check_rate(obj: object, lo: float, hi: float) -> None:
    rate = obj.rate_hz  # type: ignore[attr-defined]
    if not (np.isfinite(rate) and lo <= rate <= hi):
        raise ConfigError(f"{type(obj).__name__}.rate_hz must be in [{lo}, {hi}] Hz, got {rate}")


def _check_vec3(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or not np.isfinite(arr).all():
        raise ConfigError(f"{name} must be three finite numbers, got {value!r}")
    return arr


# --- IMU -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImuConfig:
    """IMU error model; the defaults are the `car` preset (a phone-grade MEMS IMU).

    Densities are continuous-time: white noise std per sample = density * sqrt(rate);
    bias random walk std per sample = rw * sqrt(dt). Scale errors [ppm] are drawn once
    per run and axis. The IMU sits at the base_link origin, rotated by `mount_rpy_rad`
    (R_base_imu = Rz(yaw) Ry(pitch) Rx(roll)), and measures in imu_link axes.
    """

    rate_hz: float = 200.0
    gyro_noise_density_radps_rthz: float = 2.0e-4
    accel_noise_density_mps2_rthz: float = 2.0e-3
    gyro_bias_rw_radps2_rthz: float = 1.0e-5
    accel_bias_rw_mps3_rthz: float = 2.0e-4
    gyro_bias_sigma_radps: float = 5.0e-3
    accel_bias_sigma_mps2: float = 0.05
    gyro_scale_ppm: float = 2000.0
    accel_scale_ppm: float = 2000.0
    mount_rpy_rad: tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation_sigma_rp_rad: float = 0.01  # AHRS roll/pitch error (std), reported as such
    orientation_sigma_yaw_rad: float = 0.1  # AHRS heading error (std), reported as such
    orientation_tau_s: float = 30.0  # correlation time of the AHRS error

    def __post_init__(self) -> None:
        _check_rate(self, 100.0, 400.0)
        _check_nonneg(self)
        _check_vec3(self.mount_rpy_rad, "ImuConfig.mount_rpy_rad")
        if self.orientation_tau_s <= 0:
            raise ConfigError(
                f"ImuConfig.orientation_tau_s must be > 0, got {self.orientation_tau_s}"
            )

    @classmethod
    def car(cls, **overrides) -> ImuConfig:
        """Phone-grade consumer MEMS (Bosch BMI160 / TDK ICM-4x class) fixed in a car."""
        return replace(cls(), **overrides)

    @classmethod
    def drone(cls, **overrides) -> ImuConfig:
        """Consumer MEMS on a small multirotor's flight controller (ICM-20602 class, Pixhawk
        style), noisier from propeller vibration, magnetometer heading disturbed by motors."""
        base = cls(
            gyro_noise_density_radps_rthz=5.0e-4,
            accel_noise_density_mps2_rthz=6.0e-3,
            gyro_bias_rw_radps2_rthz=4.0e-5,
            accel_bias_rw_mps3_rthz=1.0e-3,
            gyro_bias_sigma_radps=1.0e-2,
            accel_bias_sigma_mps2=0.1,
            gyro_scale_ppm=5000.0,
            accel_scale_ppm=5000.0,
            orientation_sigma_rp_rad=0.02,
            orientation_sigma_yaw_rad=0.15,
        )
        return replace(base, **overrides)

    @classmethod
    def noise_free(cls, **overrides) -> ImuConfig:
        """A perfect IMU (all errors zero), for consistency tests."""
        zero = {
            f.name: 0.0
            for f in fields(cls)
            if f.name not in ("rate_hz", "mount_rpy_rad", "orientation_tau_s")
        }
        return replace(cls(**zero), **overrides)

    @classmethod
    def preset(cls, name: str, **overrides) -> ImuConfig:
        """The named preset: "car", "drone" or "noise_free"."""
        factories = {"car": cls.car, "drone": cls.drone, "noise_free": cls.noise_free}
        if name not in factories:
            raise ConfigError(f"unknown IMU preset {name!r}; choose one of {sorted(factories)}")
        return factories[name](**overrides)

    @property
    def R_base_imu(self) -> np.ndarray:
        """Rotation of imu_link in base_link (v_base = R_base_imu @ v_imu)."""
        return Rotation.from_euler("xyz", self.mount_rpy_rad).as_matrix()


@dataclass(frozen=True, eq=False)
class ImuBatch:
    """Simulated IMU readings in imu_link axes, with the errors that produced them.

    `q_xyzw` is the orientation of imu_link in the world (ENU map) frame as the IMU's own
    AHRS would report it: the truth perturbed by a slowly varying error about the world
    axes with std (rp, rp, yaw) equal to the reported `cov_orientation_3x3`.
    """

    t_s: np.ndarray  # (N,)
    gyro_radps: np.ndarray  # (N, 3)
    accel_mps2: np.ndarray  # (N, 3) specific force
    gyro_bias_radps: np.ndarray  # (N, 3) true bias included in gyro_radps
    accel_bias_mps2: np.ndarray  # (N, 3)
    gyro_scale: np.ndarray  # (3,) scale error, measured = (1 + scale) * true + bias + noise
    accel_scale: np.ndarray  # (3,)
    q_xyzw: np.ndarray  # (N, 4) noisy AHRS orientation of imu_link in the world
    q_true_xyzw: np.ndarray  # (N, 4)
    R_base_imu: np.ndarray  # (3, 3)
    cov_gyro_3x3: np.ndarray
    cov_accel_3x3: np.ndarray
    cov_orientation_3x3: np.ndarray
    frame_id: str = "imu_link"

    def to_samples(self) -> list[ImuSample]:
        """One ImuSample per reading (frame imu_link, orientation = the AHRS estimate)."""
        return [
            ImuSample(
                t_s=float(self.t_s[i]),
                gyro_radps=self.gyro_radps[i],
                accel_mps2=self.accel_mps2[i],
                frame_id=self.frame_id,
                q_xyzw=self.q_xyzw[i],
                cov_gyro_3x3=self.cov_gyro_3x3,
                cov_accel_3x3=self.cov_accel_3x3,
                cov_orientation_3x3=self.cov_orientation_3x3,
            )
            for i in range(self.t_s.size)
        ]


def _gauss_markov(
    rng: np.random.Generator, n: int, dim: int, dt: float, tau_s: float, sigma
) -> np.ndarray:
    """Stationary first-order Gauss-Markov process (n, dim) with per-axis std `sigma`."""
    sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (dim,))
    phi = np.exp(-dt / tau_s)
    w = rng.standard_normal((n, dim))
    w[1:] *= np.sqrt(1.0 - phi**2)
    x = lfilter([1.0], [1.0, -phi], w, axis=0)  # x[k] = phi x[k-1] + w[k], x[0] = w[0]
    return x * sigma


def simulate_imu(
    traj: Trajectory,
    t_s: np.ndarray | None,
    cfg: ImuConfig,
    rng: np.random.Generator,
    gravity_mps2: float,
) -> ImuBatch:
    """IMU readings at t_s (default: the whole trajectory at cfg.rate_hz).

    Specific force f_imu = R_imu^T R_base^T (a - g_vec), g_vec = (0, 0, -gravity_mps2);
    rate w_imu = R_imu^T w_base. `gravity_mps2` is constant (e.g. normal_gravity_mps2 at
    the datum) and is what a strapdown integration must use to reproduce the path.
    """
    if not (np.isfinite(gravity_mps2) and 9.7 < gravity_mps2 < 9.9):
        raise ConfigError(f"gravity_mps2 must be Earth's gravity (about 9.8), got {gravity_mps2}")
    t = traj.times(cfg.rate_hz) if t_s is None else np.asarray(t_s, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or not (np.diff(t) > 0).all():
        raise ConfigError("IMU times must be a strictly increasing 1-D array of >= 2 samples")
    dt = float(np.median(np.diff(t)))
    if abs(dt * cfg.rate_hz - 1.0) > 0.01:
        raise ConfigError(f"IMU times are spaced {dt:.6f} s but rate_hz is {cfg.rate_hz}")
    n = t.size
    st = traj.state(t)
    R_bi = cfg.R_base_imu
    R_wi = st.R_world_base @ R_bi
    f_world = st.a_mps2 + np.array([0.0, 0.0, gravity_mps2])
    f_true = np.einsum("nji,nj->ni", R_wi, f_world)
    w_true = st.w_base_radps @ R_bi  # R_bi^T w for each row

    gyro_scale = rng.standard_normal(3) * cfg.gyro_scale_ppm * 1e-6
    accel_scale = rng.standard_normal(3) * cfg.accel_scale_ppm * 1e-6
    gyro_bias = rng.standard_normal(3) * cfg.gyro_bias_sigma_radps + np.vstack(
        [np.zeros(3), np.cumsum(rng.standard_normal((n - 1, 3)), 0)]
    ) * (cfg.gyro_bias_rw_radps2_rthz * np.sqrt(dt))
    accel_bias = rng.standard_normal(3) * cfg.accel_bias_sigma_mps2 + np.vstack(
        [np.zeros(3), np.cumsum(rng.standard_normal((n - 1, 3)), 0)]
    ) * (cfg.accel_bias_rw_mps3_rthz * np.sqrt(dt))
    sig_g = cfg.gyro_noise_density_radps_rthz * np.sqrt(cfg.rate_hz)
    sig_a = cfg.accel_noise_density_mps2_rthz * np.sqrt(cfg.rate_hz)
    gyro = w_true * (1.0 + gyro_scale) + gyro_bias + rng.standard_normal((n, 3)) * sig_g
    accel = f_true * (1.0 + accel_scale) + accel_bias + rng.standard_normal((n, 3)) * sig_a

    sig_o = np.array(
        [cfg.orientation_sigma_rp_rad, cfg.orientation_sigma_rp_rad, cfg.orientation_sigma_yaw_rad]
    )
    err = _gauss_markov(rng, n, 3, dt, cfg.orientation_tau_s, sig_o)
    R_ahrs = Rotation.from_rotvec(err).as_matrix() @ R_wi  # error about the world axes
    # reported covariances floored so that a noise-free run does not claim certainty
    cov_o = np.diag(np.maximum(sig_o, 1e-3) ** 2)
    return ImuBatch(
        t_s=t,
        gyro_radps=gyro,
        accel_mps2=accel,
        gyro_bias_radps=gyro_bias,
        accel_bias_mps2=accel_bias,
        gyro_scale=gyro_scale,
        accel_scale=accel_scale,
        q_xyzw=xyzw_from_matrix(R_ahrs),
        q_true_xyzw=xyzw_from_matrix(R_wi),
        R_base_imu=R_bi,
        cov_gyro_3x3=np.eye(3) * max(sig_g, 1e-5) ** 2,
        cov_accel_3x3=np.eye(3) * max(sig_a, 1e-4) ** 2,
        cov_orientation_3x3=cov_o,
    )


# --- GNSS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GnssConfig:
    """Single-frequency consumer receiver (u-blox M8/M9 class, no RTK) and its faults.

    Open sky: error = Gauss-Markov (tau_s) + white, combined stationary std equal to the
    reported sigma_h_m / sigma_v_m (DIAGONAL_KNOWN), so NEES is consistent. Multipath
    bursts start as a Poisson process of rate burst_rate_hz * exposure; each carries a
    constant horizontal bias (ramping in over burst_ramp_s) plus Student-t noise, while
    the reported covariance only grows by burst_cov_inflation (optimistic, as real
    receivers are). The fix is of the antenna at gnss_link (lever arm in base_link) at
    the measurement time, stamped latency_s later (the receiver does not compensate).
    Outages: "missing" publishes nothing; "no_fix" publishes status NO_FIX with the last
    published lat/lon/alt as a NaN-free placeholder and covariance type UNKNOWN.
    """

    rate_hz: float = 5.0
    sigma_h_m: float = 0.8
    sigma_v_m: float = 1.5
    tau_s: float = 30.0
    white_var_fraction: float = 0.2  # share of the variance that is white
    latency_s: float = 0.1
    lever_arm_base_m: tuple[float, float, float] = (0.0, 0.0, 1.5)
    burst_rate_hz: float = 1.0 / 60.0  # at exposure 1
    burst_duration_s: tuple[float, float] = (2.0, 8.0)  # uniform
    burst_bias_m: tuple[float, float] = (10.0, 30.0)  # horizontal magnitude, uniform
    burst_ramp_s: float = 0.5
    burst_noise_scale_m: float = 2.0  # Student-t scale per axis
    burst_noise_dof: float = 3.0
    burst_cov_inflation: float = 1.5  # reported covariance factor during a burst
    outage_mode: str = "missing"

    def __post_init__(self) -> None:
        _check_rate(self, 1.0, 10.0)
        _check_nonneg(self)
        _check_vec3(self.lever_arm_base_m, "GnssConfig.lever_arm_base_m")
        if self.tau_s <= 0:
            raise ConfigError(f"GnssConfig.tau_s must be > 0, got {self.tau_s}")
        if not self.white_var_fraction <= 1.0:
            raise ConfigError(
                f"GnssConfig.white_var_fraction must be in [0, 1], got {self.white_var_fraction}"
            )
        for name in ("burst_duration_s", "burst_bias_m"):
            lo, hi = getattr(self, name)
            if not (np.isfinite([lo, hi]).all() and 0 <= lo <= hi):
                raise ConfigError(
                    f"GnssConfig.{name} must be a range 0 <= min <= max, got {(lo, hi)}"
                )
        if self.burst_duration_s[1] <= 0:
            raise ConfigError("GnssConfig.burst_duration_s must allow a positive duration")
        if self.burst_noise_dof <= 2:
            raise ConfigError(
                "GnssConfig.burst_noise_dof must be > 2 (finite variance), "
                f"got {self.burst_noise_dof}"
            )
        if self.burst_cov_inflation < 1.0:
            raise ConfigError(
                f"GnssConfig.burst_cov_inflation must be >= 1, got {self.burst_cov_inflation}"
            )
        if self.outage_mode not in ("missing", "no_fix"):
            raise ConfigError(
                f"GnssConfig.outage_mode must be 'missing' or 'no_fix', got {self.outage_mode!r}"
            )

    @property
    def cov_enu_3x3(self) -> np.ndarray:
        """The nominal reported covariance [m^2]."""
        return np.diag([self.sigma_h_m**2, self.sigma_h_m**2, self.sigma_v_m**2])


@dataclass(frozen=True, eq=False)
class GnssBatch:
    """Every GNSS measurement epoch with its truth, including epochs lost to outages.

    Positions are in the map ENU frame; `p_reported_enu_m = p_antenna_enu_m + error_enu_m`
    and lat/lon/alt are its WGS84 coordinates. Stamps `t_stamp_s = t_meas_s + latency`.
    """

    t_meas_s: np.ndarray  # (N,) time the fix describes
    t_stamp_s: np.ndarray  # (N,) header stamp
    p_base_enu_m: np.ndarray  # (N, 3) true base_link
    p_antenna_enu_m: np.ndarray  # (N, 3) true antenna (gnss_link)
    error_enu_m: np.ndarray  # (N, 3)
    p_reported_enu_m: np.ndarray  # (N, 3)
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    alt_m: np.ndarray
    cov_enu_3x3: np.ndarray  # (N, 3, 3) reported
    exposure: np.ndarray  # (N,) multipath exposure at the antenna
    in_burst: np.ndarray  # (N,) bool
    in_outage: np.ndarray  # (N,) bool
    outage_mode: str = "missing"
    datum: tuple[float, float, float] = (0.0, 0.0, 0.0)
    frame_id: str = "gnss_link"

    def to_fixes(self) -> list[GnssFix]:
        """GnssFix messages in stamp order; outage epochs per `outage_mode`."""
        out: list[GnssFix] = []
        last = self.datum
        for i in range(self.t_meas_s.size):
            if self.in_outage[i]:
                if self.outage_mode == "no_fix":
                    out.append(
                        GnssFix(
                            t_s=float(self.t_stamp_s[i]),
                            lat_deg=last[0],
                            lon_deg=last[1],
                            alt_m=last[2],
                            status=GnssStatus.NO_FIX,
                            cov_enu_3x3=None,
                            covariance_type=CovarianceType.UNKNOWN,
                            frame_id=self.frame_id,
                        )
                    )
                continue
            last = (float(self.lat_deg[i]), float(self.lon_deg[i]), float(self.alt_m[i]))
            out.append(
                GnssFix(
                    t_s=float(self.t_stamp_s[i]),
                    lat_deg=last[0],
                    lon_deg=last[1],
                    alt_m=last[2],
                    status=GnssStatus.FIX,
                    cov_enu_3x3=self.cov_enu_3x3[i],
                    covariance_type=CovarianceType.DIAGONAL_KNOWN,
                    frame_id=self.frame_id,
                )
            )
        return out


def _outage_mask(t_rel: np.ndarray, outages: Sequence[tuple[float, float]]) -> np.ndarray:
    mask = np.zeros(t_rel.shape, dtype=bool)
    for window in outages:
        try:
            start, duration = (float(x) for x in window)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"outage {window!r} must be (start_s, duration_s)") from exc
        if not (np.isfinite([start, duration]).all() and duration >= 0):
            raise ConfigError(f"outage {window!r} needs a finite start and duration >= 0")
        mask |= (t_rel >= start) & (t_rel < start + duration)
    return mask


def simulate_gnss(
    traj: Trajectory,
    cfg: GnssConfig,
    ltp: LocalTangentPlane,
    rng: np.random.Generator,
    multipath_exposure: ExposureFn | None = None,
    t_start_s: float | None = None,
    t_end_s: float | None = None,
    outages: Sequence[tuple[float, float]] = (),
) -> GnssBatch:
    """GNSS epochs every 1/rate_hz in [t_start_s, t_end_s] (default: the whole trajectory).

    `multipath_exposure` None means open sky. `outages` are (start_s, duration_s) windows
    relative to traj.t0_s, applied to the measurement time.
    """
    t = traj.times(cfg.rate_hz, t_start_s, t_end_s)
    n, dt = t.size, 1.0 / cfg.rate_hz
    st = traj.state(t)
    lever = np.asarray(cfg.lever_arm_base_m, dtype=np.float64)
    p_ant = st.p_m + st.R_world_base @ lever
    if multipath_exposure is None:
        exposure = np.zeros(n)
    else:
        exposure = np.asarray(multipath_exposure(p_ant), dtype=np.float64).reshape(-1)
        if exposure.shape != (n,) or not (
            np.isfinite(exposure).all() and (exposure >= 0).all() and (exposure <= 1).all()
        ):
            raise ConfigError("multipath_exposure must return one value in [0, 1] per position")

    sig = np.array([cfg.sigma_h_m, cfg.sigma_h_m, cfg.sigma_v_m])
    f_w = cfg.white_var_fraction
    err = _gauss_markov(rng, n, 3, dt, cfg.tau_s, sig * np.sqrt(1.0 - f_w))
    err += rng.standard_normal((n, 3)) * sig * np.sqrt(f_w)

    # multipath bursts: a Poisson start process while not in a burst
    u_start = rng.random(n)
    t_noise = rng.standard_t(cfg.burst_noise_dof, (n, 3)) * cfg.burst_noise_scale_m
    in_burst = np.zeros(n, dtype=bool)
    bias = np.zeros((n, 3))
    end, t_b, b_vec = -np.inf, 0.0, np.zeros(3)
    for k in range(n):
        if t[k] >= end and k > 0:
            lam = cfg.burst_rate_hz * exposure[k]
            if lam > 0 and u_start[k] < -np.expm1(-lam * dt):
                t_b = t[k] - rng.random() * dt  # start somewhere in (t[k-1], t[k]]
                end = t_b + rng.uniform(*cfg.burst_duration_s)
                mag = rng.uniform(*cfg.burst_bias_m)
                ang = rng.uniform(0.0, 2.0 * np.pi)
                b_vec = np.array([mag * np.cos(ang), mag * np.sin(ang), 0.0])
        if t[k] < end:
            in_burst[k] = True
            ramp = 1.0 if cfg.burst_ramp_s <= 0 else min(1.0, (t[k] - t_b) / cfg.burst_ramp_s)
            bias[k] = ramp * b_vec
    err[in_burst] += bias[in_burst] + t_noise[in_burst]

    cov = np.broadcast_to(cfg.cov_enu_3x3, (n, 3, 3)).copy()
    cov[in_burst] *= cfg.burst_cov_inflation
    p_rep = p_ant + err
    lat, lon, alt = ltp.geodetic_from_enu(p_rep)
    in_outage = _outage_mask(t - traj.t0_s, outages)
    log.debug("gnss: %d epochs, %d in bursts, %d in outages", n, in_burst.sum(), in_outage.sum())
    return GnssBatch(
        t_meas_s=t,
        t_stamp_s=t + cfg.latency_s,
        p_base_enu_m=st.p_m,
        p_antenna_enu_m=p_ant,
        error_enu_m=err,
        p_reported_enu_m=p_rep,
        lat_deg=lat,
        lon_deg=lon,
        alt_m=alt,
        cov_enu_3x3=cov,
        exposure=exposure,
        in_burst=in_burst,
        in_outage=in_outage,
        outage_mode=cfg.outage_mode,
        datum=(ltp.lat0_deg, ltp.lon0_deg, ltp.alt0_m),
    )


# --- wheel speed -----------------------------------------------------------------------


@dataclass(frozen=True)
class WheelSpeedConfig:
    """Vehicle speed from the wheel encoders (CAN bus / OBD-II, active Hall ABS sensors).

    Reports the forward speed of base_link: (1 + scale) * v + white noise, clipped at
    zero; below `standstill_mps` the encoders see no ticks and report exactly 0.
    """

    rate_hz: float = 50.0
    noise_mps: float = 0.05
    scale_sigma: float = 0.005  # drawn once per run (tyre radius error)
    standstill_mps: float = STOPPED_MPS

    def __post_init__(self) -> None:
        _check_rate(self, 1.0, 1000.0)
        _check_nonneg(self)


@dataclass(frozen=True, eq=False)
class WheelBatch:
    """Wheel-speed readings with their truth."""

    t_s: np.ndarray
    speed_mps: np.ndarray
    variance_m2ps2: float  # reported variance of each reading
    true_speed_mps: np.ndarray  # forward speed of base_link
    scale_error: float
    stopped: np.ndarray  # bool


def simulate_wheel_speed(
    traj: Trajectory,
    cfg: WheelSpeedConfig,
    rng: np.random.Generator,
    t_start_s: float | None = None,
    t_end_s: float | None = None,
) -> WheelBatch:
    """Forward speed readings every 1/rate_hz in [t_start_s, t_end_s] (default: all)."""
    t = traj.times(cfg.rate_hz, t_start_s, t_end_s)
    st = traj.state(t)
    v_fwd = np.einsum("ni,ni->n", st.R_world_base[:, :, 0], st.v_mps)
    scale = float(rng.standard_normal() * cfg.scale_sigma)
    meas = v_fwd * (1.0 + scale) + rng.standard_normal(t.size) * cfg.noise_mps
    stopped = st.speed_mps < cfg.standstill_mps
    meas = np.where(stopped, 0.0, np.maximum(meas, 0.0))
    return WheelBatch(
        t_s=t,
        speed_mps=meas,
        variance_m2ps2=max(cfg.noise_mps, 1e-3) ** 2,
        true_speed_mps=v_fwd,
        scale_error=scale,
        stopped=stopped,
    )
