"""IMU-centred fixed-lag smoother on GTSAM: GNSS, wheel speed and visual fixes.

Keyframes every `keyframe_period_s` carry pose X, velocity V and IMU bias B, linked
by CombinedImuFactor. A measurement at time t attaches to the keyframe j just
before t and is predicted forward by the keyframe velocity over t - t_j, so no
information is moved in time. GNSS fixes are shifted back by the receiver latency,
admitted by `gnss_admission` (gate, re-admission, bursts) and wrapped in a robust loss.
The same object runs in `geoloc eval` and in fusion_node.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter, deque

import gtsam
import numpy as np
from gtsam.symbol_shorthand import B, G, V, W, X
from scipy.stats import chi2

from geoloc_ros.errors import InputRejected
from geoloc_ros.fusion.config import FusionConfig
from geoloc_ros.fusion.factors import (
    biased_antenna_factor,
    body_velocity_factor,
    gauss_markov_factor,
    nonholonomic_factor,
    planar_pose_factor,
)
from geoloc_ros.fusion.gnss_admission import GnssAdmission, Held, Innovation
from geoloc_ros.fusion.smoother import FixedLagSmoother
from geoloc_ros.fusion.warm_start import CarriedAttitude
from geoloc_ros.geo.covariance import cov_gtsam_from_ros, cov_ros_from_gtsam
from geoloc_ros.geo.quaternion import (
    matrix_from_xyzw,
    xyzw_from_matrix,
    xyzw_from_rot3,
    xyzw_from_rpy,
)
from geoloc_ros.geo.se3 import skew
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.types import (
    FREE_VARIANCE,
    CovarianceType,
    Decision,
    GnssFix,
    ImuSample,
    NavState,
    PoseFix,
)

log = logging.getLogger(__name__)

RECENT_KEYFRAMES = 8  # cached keyframe estimates: covers GNSS latency up to 0.8 s at 10 Hz
MIN_NOISE_VARIANCE = 1e-12  # 1 um or 1 urad: below it a noise model overflows GTSAM
MIN_NOISE_DECORRELATION = 1e-12  # least eigenvalue of the correlation matrix
GNSS_BIAS_BLOCK_S = 1.0  # the GNSS error state is held constant this long
WHEEL_SCALE_BLOCK_S = 1.0  # so is the wheel-speed scale (it drifts over minutes)
STANDSTILL_SPEED_MPS = 0.3  # slower than this, the vehicle stands (visual repeats)
STANDSTILL_MOVE_M = 1.0  # ... and must have moved less than this since the last fix
WHEEL_BUFFER = 500  # wheel-speed samples kept: 10 s at 50 Hz
WHEEL_MAX_GAP_S = 0.2  # interpolate between samples at most this far apart
WHEEL_NEAREST_S = 0.06  # else use the nearest sample this close to the keyframe
WHEEL_ALIVE_S = 1.0  # no sample this long: the stream is absent, do not wait for it
INIT_CHECK_MAX_SPEED_MPS = 20.0  # a start from a visual fix: how far the latest GNSS fix
INIT_CHECK_PROB = 0.999  # ... may be, by its age, and the chi-square gate on the difference
MAX_SPEED_MPS = 1000.0  # a keyframe faster than this has diverged: re-initialise


def check_noise_covariance(cov: np.ndarray, what: str) -> None:
    """Reject a measurement covariance GTSAM cannot whiten: singular or nearly so.

    check_covariance accepts positive semi-definite matrices (e.g. rank one); a noise
    model needs a positive definite one, or every later smoother update fails. The test
    is on the correlation matrix, so a huge variance ("unknown") on one axis is fine.
    """
    d = np.diag(cov)
    ok = d.min() > MIN_NOISE_VARIANCE
    if ok:
        s = 1.0 / np.sqrt(d)
        ok = np.linalg.eigvalsh(cov * s[:, None] * s[None, :])[0] > MIN_NOISE_DECORRELATION
    if not ok:
        raise InputRejected(f"{what} covariance is singular or ill-conditioned", "covariance")


def planar_has_height(fix: PoseFix) -> bool:
    """Whether a planar (3-dof) fix carries a measured height: a z variance below
    FREE_VARIANCE / 10 (a drone's nadir fix from the map localizer's height search)."""
    v = fix.cov_pose_6x6[2, 2]
    return fix.dof == 3 and bool(0.0 < v < FREE_VARIANCE / 10)


def pose_noise_covariance(fix: PoseFix, use_z: bool = True) -> np.ndarray:
    """The covariance of a pose fix's factor: [x, y, (z,) yaw] (3 dof) or GTSAM's 6x6 order;
    `use_z` False frees a 6-dof fix's map-frame height (FREE_VARIANCE, as planar fixes carry)."""
    if fix.dof == 3:
        idx = [0, 1, 2, 5] if planar_has_height(fix) else [0, 1, 5]
        return fix.cov_pose_6x6[np.ix_(idx, idx)]
    cov_ros = np.array(fix.cov_pose_6x6, dtype=np.float64)
    if not use_z:
        cov_ros[2, :] = 0.0
        cov_ros[:, 2] = 0.0
        cov_ros[2, 2] = FREE_VARIANCE
    return cov_gtsam_from_ros(cov_ros, matrix_from_xyzw(fix.q_xyzw))


class FusionEstimator:
    """Feed inputs in arrival order; read `state` (keyframe) or on_imu's IMU-rate output."""

    def __init__(self, cfg: FusionConfig) -> None:
        self.cfg = cfg
        self.ltp = LocalTangentPlane(*cfg.datum) if cfg.datum else None
        self._R_base_imu = matrix_from_xyzw(cfg.q_base_imu)
        self._lever = np.asarray(cfg.gnss_lever_arm_m, float)
        p = gtsam.PreintegrationCombinedParams.MakeSharedU(cfg.gravity_mps2)
        p.setAccelerometerCovariance(np.eye(3) * cfg.accel_noise_density**2)
        p.setGyroscopeCovariance(np.eye(3) * cfg.gyro_noise_density**2)
        p.setIntegrationCovariance(np.eye(3) * cfg.integration_sigma**2)
        p.setBiasAccCovariance(np.eye(3) * cfg.accel_bias_rw**2)
        p.setBiasOmegaCovariance(np.eye(3) * cfg.gyro_bias_rw**2)
        self._pim_params = p
        sb = cfg.gnss_bias_sigma_m
        self._gbias_cov = np.diag([sb**2, sb**2, (2 * sb) ** 2])  # stationary, per axis
        self._g_block = max(1, round(GNSS_BIAS_BLOCK_S / cfg.keyframe_period_s))
        self._g_t = 0.0  # start of the newest GNSS error block
        self._w_block = max(1, round(WHEEL_SCALE_BLOCK_S / cfg.keyframe_period_s))
        self.counts: Counter[str] = Counter()
        self.decisions: list[Decision] = []
        self.reset()

    # -- lifecycle --------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything but the datum (time jump, bag loop)."""
        self._smoother: FixedLagSmoother | None = None
        self._t_kf: dict[int, float] = {}
        self._k = -1
        self._pim: gtsam.PreintegratedCombinedMeasurements | None = None
        self._nav: gtsam.NavState | None = None
        self._bias = gtsam.imuBias.ConstantBias()
        # pose, velocity and marginal (GTSAM order) of the newest keyframes, as each was
        # when it was the newest: measurements attach to these for prediction and gating
        self._recent: dict[int, tuple[gtsam.Pose3, np.ndarray, np.ndarray]] = {}
        self._imu_buf: deque = deque(maxlen=2000)
        self._fix_buf: deque = deque(maxlen=200)
        self._pending: list[tuple[float, str, object]] = []
        self._wheel: list[tuple[float, float, float]] = []  # (t, speed, var), by stamp
        self._velocity_due: deque[int] = deque()  # keyframes awaiting their wheel speed
        self._last_imu: tuple[float, np.ndarray, np.ndarray] | None = None
        self._imu_att_sample: ImuSample | None = None  # the latest with a usable orientation
        self._imu_att_cache: tuple[float, np.ndarray, np.ndarray] | None = None
        self._admission = GnssAdmission(self.cfg, self.counts, self.decisions)
        self._view_used: dict[str, tuple[float, np.ndarray]] = {}  # source -> (t, p_m)
        self._diverged = False
        self._carried: CarriedAttitude | None = None  # set by a divergence reset
        self.state: NavState | None = None
        self._state_checked: NavState | None = None  # the last state on_imu found sane

    def _g(self, k: int) -> int:
        """The GNSS error state of keyframe k: one per block of keyframes (about 1 s; the
        error's correlation time is tens of seconds, and a state per keyframe made every
        smoother update several times dearer)."""
        return G(k // self._g_block)

    def _w(self, k: int) -> int:
        """The wheel-speed scale state of keyframe k: one per block of keyframes, like
        the GNSS error (a state per keyframe was a quarter of the smoother's variables)."""
        return W(k // self._w_block)

    @property
    def initialized(self) -> bool:
        return self._smoother is not None

    # -- inputs -----------------------------------------------------------------------
    def on_imu(self, s: ImuSample, propagate: bool = True) -> NavState | None:
        """Integrate one IMU sample; returns the IMU-rate state once initialised (None
        with `propagate` false: outputs decimated below the IMU rate build it when due)."""
        acc = self._R_base_imu @ s.accel_mps2
        gyr = self._R_base_imu @ s.gyro_radps
        if not (np.isfinite(acc).all() and np.isfinite(gyr).all()):
            raise InputRejected("IMU sample is not finite", "nan")
        if self._last_imu is not None and s.t_s <= self._last_imu[0]:
            raise InputRejected(f"IMU stamp {s.t_s:.6f} not after the last one", "out_of_order")
        if s.q_xyzw is not None and s.cov_orientation_3x3 is not None:
            self._store_attitude(s)
        if not self.initialized:
            if self._carried is not None and len(self._imu_buf) == self._imu_buf.maxlen:
                t_old, _, w_old = self._imu_buf[0]  # about to leave the buffer: carry over it
                self._carried = self._carried.advanced(t_old, w_old)
            self._imu_buf.append((s.t_s, acc, gyr))
            self._last_imu = (s.t_s, acc, gyr)
            if self.cfg.start_at_origin:
                self._init_at_origin(s.t_s)
            return None
        try:
            self._integrate_to(s.t_s, acc, gyr)
        except RuntimeError as exc:  # GTSAM: indeterminate system; every later update fails too
            log.warning("fusion smoother failed: re-initialising (%s)", str(exc).strip()[:80])
            self.counts["smoother_failure_reset"] += 1
            self.reset()
            return None
        st = self.state
        if st is not self._state_checked:  # a new keyframe state: checked once, not per sample
            speed = float(np.linalg.norm(st.v_mps))
            if not (speed < MAX_SPEED_MPS and np.isfinite(st.p_m).all()
                    and np.isfinite(st.cov_pose_6x6).all()):  # fmt: skip
                # e.g. after a gross outlier in an ungated visual fix: the smoother runs away
                log.warning("fusion state diverged (|v| = %.3g m/s): re-initialising", speed)
                self.counts["state_divergence_reset"] += 1
                self.reset()
                return None
            self._state_checked = st
        if self._diverged:
            log.warning(
                "fusion diverged from GNSS for %.0f s: re-initialising", self.cfg.gnss_gate_reset_s
            )
            carried = self._carry_attitude(s.t_s)
            self.reset()  # keeps the datum; re-initialises from the next fixes
            self._carried = carried  # ... with the attitude and biases (warm_start.py)
            return None
        return self.propagated(s.t_s) if propagate else None

    def on_gnss(self, fix: GnssFix) -> Decision | None:
        """Queue a fix (latency-corrected); decided when its keyframe exists."""
        if not fix.has_fix:
            self.counts["gnss_no_fix"] += 1
            return Decision(fix.t_s, False, "no_fix")
        if self.ltp is None:
            self.ltp = LocalTangentPlane(fix.lat_deg, fix.lon_deg, fix.alt_m)
        z = self.ltp.enu_from_geodetic(fix.lat_deg, fix.lon_deg, fix.alt_m)
        if np.abs(z).max() > 1e5:
            raise InputRejected(f"fix is {np.linalg.norm(z) / 1e3:.0f} km from the datum", "range")
        cov = self._gnss_cov(fix)
        check_noise_covariance(cov, "fix position")
        t_meas = fix.t_s - self.cfg.gnss_latency_s
        if not self.initialized:
            self._fix_buf.append((t_meas, z, cov))
            self._try_init()
            return None
        self._pending.append((t_meas, "gnss", (z, cov)))
        return None

    def on_wheel_speed(self, t_s: float, speed_mps: float, var_m2ps2: float) -> None:
        if not (np.isfinite(speed_mps) and np.isfinite(var_m2ps2) and var_m2ps2 >= 0):
            raise InputRejected("wheel speed or its variance is not finite", "nan")
        if abs(speed_mps) > 100.0:
            raise InputRejected(f"wheel speed {speed_mps:.1f} m/s is implausible", "range")
        bisect.insort(self._wheel, (t_s, speed_mps, var_m2ps2))  # late or reordered: in place
        while len(self._wheel) > WHEEL_BUFFER or (
            self._wheel and self._wheel[0][0] < self._wheel[-1][0] - self.cfg.lag_s
        ):
            self._wheel.pop(0)

    def on_pose_fix(self, fix: PoseFix) -> None:
        """A visual fix: 6-DoF (PoseNet) or planar x, y, yaw (map localizer)."""
        if fix.cov_pose_6x6 is None:
            raise InputRejected("pose fix without covariance", "covariance")
        if not (np.isfinite(fix.p_m).all() and np.isfinite(fix.cov_pose_6x6).all()):
            raise InputRejected("pose fix is not finite", "nan")
        if np.abs(fix.p_m).max() > 1e5:
            raise InputRejected("pose fix is more than 100 km from the map origin", "range")
        check_noise_covariance(pose_noise_covariance(fix), "pose fix")
        if not self.initialized:
            self._init_from_pose_fix(fix)
            return
        self._pending.append((fix.t_s, "pose", fix))

    # -- internals ------------------------------------------------------------------------
    def _store_attitude(self, s: ImuSample) -> None:
        """Keep the latest usable AHRS orientation; converted only when a keyframe or the
        start asks for it (_imu_att), not at IMU rate."""
        cov = s.cov_orientation_3x3
        if not (np.isfinite(s.q_xyzw).all() and np.isfinite(cov).all()) or cov[0, 0] < 0:
            return  # ROS marks "no orientation" with cov[0] = -1
        self._imu_att_sample = s
        self._imu_att_cache = None

    @property
    def _imu_att(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        """(t, R_map_base, body-frame covariance) of the latest AHRS orientation."""
        s = self._imu_att_sample
        if s is None or self._imu_att_cache is not None:
            return self._imu_att_cache
        R = matrix_from_xyzw(s.q_xyzw) @ self._R_base_imu.T
        floor = self.cfg.imu_orientation_min_sigma_rad**2
        # ROS gives the orientation covariance about fixed axes; GTSAM wants body axes
        cov_body = R.T @ (s.cov_orientation_3x3 + np.eye(3) * floor) @ R
        self._imu_att_cache = (s.t_s, R, cov_body)
        return self._imu_att_cache

    def _init_at_origin(self, t: float) -> None:
        """Dead-reckoning start: the map origin, tilt from gravity, yaw from the AHRS or 0."""
        yaw = 0.0
        if self._imu_att is not None:
            R = self._imu_att[1]
            yaw = float(np.arctan2(R[1, 0], R[0, 0]))
        self._initialize(t, np.zeros(3), np.eye(3) * 1e-4, np.zeros(3), 0.05, yaw=yaw)

    def _init_from_pose_fix(self, fix: PoseFix) -> None:
        """Position and heading from one visual fix (no motion needed)."""
        R = matrix_from_xyzw(fix.q_xyzw)
        yaw = float(np.arctan2(R[1, 0], R[0, 0]))
        cov = fix.cov_pose_6x6
        yaw_sigma = float(np.sqrt(max(cov[5, 5], 1e-6)))
        if yaw_sigma > 0.5 or max(cov[0, 0], cov[1, 1]) > 100.0:
            self.counts["pose_too_loose_to_init"] += 1
            return
        cov_p = cov[:3, :3].copy()
        if not self._uses_height(fix):  # as its factors do: the fixes find the height
            cov_p[2, :] = cov_p[:, 2] = 0.0
            cov_p[2, 2] = 100.0
        p_ant = fix.p_m + R @ self._lever
        if not self._agrees_with_gnss(fix.t_s, p_ant, cov_p):
            self.counts["pose_init_refused_by_gnss"] += 1
            return
        self._initialize(
            fix.t_s, p_ant, cov_p, np.zeros(3), 2.0, yaw=yaw,
            yaw_sigma=yaw_sigma,
        )  # fmt: skip

    def _agrees_with_gnss(self, t_s: float, p_ant_m: np.ndarray, cov_p: np.ndarray) -> bool:
        """Whether a would-be initial position is within the latest GNSS fix's reach.

        One visual fix decides the whole start; a PoseNet anchor mistake (hundreds of
        metres, sigma of a few) once started a drone there and GNSS was refused for 16 s.
        Without a recent fix there is nothing to check against and the fix is trusted.
        """
        recent = [f for f in self._fix_buf if abs(f[0] - t_s) <= self.cfg.init_window_s]
        if not recent:
            return True
        t_g, z_g, cov_g = min(recent, key=lambda f: abs(f[0] - t_s))
        reach = (INIT_CHECK_MAX_SPEED_MPS * abs(t_g - t_s)) ** 2  # it may have moved since
        S = cov_p[:2, :2] + cov_g[:2, :2] + np.eye(2) * reach
        d = (p_ant_m - z_g)[:2]
        return float(d @ np.linalg.solve(S, d)) <= chi2.ppf(INIT_CHECK_PROB, 2)

    def _gnss_cov(self, fix: GnssFix) -> np.ndarray:
        c = self.cfg
        known = fix.covariance_type in (CovarianceType.DIAGONAL_KNOWN, CovarianceType.KNOWN)
        if fix.cov_enu_3x3 is None or (c.gnss_sigma_h_m > 0 and not known):
            sh = c.gnss_sigma_h_m if c.gnss_sigma_h_m > 0 else 2.5
            sv = c.gnss_sigma_v_m if c.gnss_sigma_v_m > 0 else 2 * sh
            return np.diag([sh**2, sh**2, sv**2])
        floor = np.eye(3) * c.gnss_min_sigma_m**2
        return fix.cov_enu_3x3 + floor * (np.diag(fix.cov_enu_3x3) < c.gnss_min_sigma_m**2)

    def _try_init(self) -> None:
        """Heading from motion: a straight-line fit to the fixes of the last 3 s."""
        c = self.cfg
        t1 = self._fix_buf[-1][0]
        recent = [f for f in self._fix_buf if f[0] >= t1 - c.init_window_s]
        if len(recent) < 3 or t1 - recent[0][0] < 1.0:
            return
        t = np.array([f[0] for f in recent]) - t1
        p = np.array([f[1] for f in recent])
        sigma_h = float(np.sqrt(np.max(recent[-1][2][:2, :2].diagonal())))
        A = np.stack([np.ones_like(t), t], 1)
        coef, *_ = np.linalg.lstsq(A, p, rcond=None)
        p1, v = coef[0], coef[1].copy()
        v[2] = 0.0
        span = np.hypot(*(v[:2])) * (t[-1] - t[0])
        speed = np.hypot(*v[:2])
        if span < max(c.init_min_distance_m, 4.0 * sigma_h) or speed < c.init_min_speed_mps:
            return
        if abs(self._heading_change(t1 + t[0], t1)) > c.init_max_turn_rad:
            return  # a line through a turn points nowhere the vehicle did: wait for a straight
        resid = p[:, :2] - A @ coef[:, :2]
        dof = 2 * (len(t) - 2)
        if dof > 0 and float(np.sum(resid**2)) / sigma_h**2 > chi2.ppf(0.999, dof):
            return  # the fixes do not lie on a line: a multipath jump or a turn; wait
        sigma_v = sigma_h * np.sqrt(12.0 / len(t)) / (t[-1] - t[0])
        wheel = self._wheel_speed_at(t1) if c.use_wheel_speed else None
        if wheel is not None and wheel[0] > c.init_min_speed_mps:
            # the fit's direction at the encoders' speed: a 3 s line through fixes with a
            # correlated error once started a car 12 % slow, and the scale state took it
            v[:2] *= wheel[0] / speed
            self.counts["init_speed_from_wheel"] += 1
        self._initialize(t1, p1, recent[-1][2], v, sigma_v)

    def _heading_change(self, t_a: float, t_b: float) -> float:
        """Heading change [rad] between t_a and t_b from the gyro about gravity (biases and
        all: a turn-on gyro bias of 0.01 rad/s adds 0.03 rad over a 3 s window)."""
        samples = [(t, a, w) for t, a, w in self._imu_buf if t_a <= t <= t_b]
        if len(samples) < 2:
            return 0.0
        up = np.mean([a for _, a, _ in samples], axis=0)
        up = up / max(float(np.linalg.norm(up)), 1e-9)
        t = np.array([x[0] for x in samples])
        rate = np.array([w @ up for _, _, w in samples])
        return float(np.sum(0.5 * (rate[1:] + rate[:-1]) * np.diff(t)))

    def _initialize(
        self,
        t0: float,
        p_ant: np.ndarray,
        cov: np.ndarray,
        v: np.ndarray,
        sigma_v: float,
        yaw: float | None = None,
        yaw_sigma: float | None = None,
    ) -> None:
        """Start the graph at t0: antenna position p_ant, velocity v, tilt from gravity."""
        c = self.cfg
        recent = [a for t, a, _ in self._imu_buf if t0 - 1.0 <= t <= t0]
        if not recent:
            return
        f = np.mean(recent, axis=0)
        roll = np.arctan2(f[1], f[2])
        pitch = np.arctan2(-f[0], np.hypot(f[1], f[2]))
        if yaw is None:
            yaw = np.arctan2(v[1], v[0])
        R = matrix_from_xyzw(xyzw_from_rpy(roll, pitch, yaw))
        if yaw_sigma is None:
            speed = max(float(np.hypot(*v[:2])), 1e-3)
            yaw_sigma = max(c.init_yaw_sigma_rad, float(np.arctan2(3 * sigma_v, speed)))
        sig_rot = np.r_[c.init_tilt_sigma_rad, c.init_tilt_sigma_rad, yaw_sigma]
        sig_b = np.r_[[c.init_accel_bias_sigma] * 3, [c.init_gyro_bias_sigma] * 3]
        self._bias = gtsam.imuBias.ConstantBias()
        warm = self._warm_start(t0, yaw, yaw_sigma, sig_b) if self._carried is not None else None
        if warm is not None:
            R, sig_rot, self._bias, sig_b = warm
            yaw = float(np.arctan2(R[1, 0], R[0, 0]))
        pose = gtsam.Pose3(gtsam.Rot3(R), p_ant - R @ self._lever)
        params = gtsam.ISAM2Params()
        params.setFactorization("QR")  # gtsam 4.3.0's Cholesky fails on loose GNSS priors
        params.enablePartialRelinearizationCheck = c.relinearize_partial_check
        self._smoother = FixedLagSmoother(c.lag_s, params, c.marginalize_every_s)
        sp = np.sqrt(np.maximum(np.diag(cov), 0.01))
        graph = gtsam.NonlinearFactorGraph()
        sig_pose = np.r_[sig_rot, sp]
        graph.add(gtsam.PriorFactorPose3(X(0), pose, gtsam.noiseModel.Diagonal.Sigmas(sig_pose)))
        sv = max(sigma_v, 0.2)
        graph.add(
            gtsam.PriorFactorVector(V(0), v, gtsam.noiseModel.Diagonal.Sigmas(np.r_[sv, sv, 0.5]))
        )
        graph.add(
            gtsam.PriorFactorConstantBias(B(0), self._bias, gtsam.noiseModel.Diagonal.Sigmas(sig_b))
        )
        values = gtsam.Values()
        values.insert(X(0), pose)
        values.insert(V(0), v)
        values.insert(B(0), self._bias)
        self._scale = np.array([1.0])
        self._w_t = t0
        values.insert(self._w(0), self._scale)
        if c.gnss_bias_sigma_m > 0:
            self._gbias = np.zeros(3)
            self._g_t = t0
            values.insert(self._g(0), self._gbias)
            noise = gtsam.noiseModel.Gaussian.Covariance(self._gbias_cov)
            graph.add(gtsam.PriorFactorVector(self._g(0), self._gbias, noise))
        graph.add(
            gtsam.PriorFactorVector(
                self._w(0), self._scale, gtsam.noiseModel.Isotropic.Sigma(1, c.wheel_scale_sigma)
            )
        )
        self._update(graph, values, 0, t0)
        self._pim = gtsam.PreintegratedCombinedMeasurements(self._pim_params, self._bias)
        later = [s for s in self._imu_buf if s[0] > t0]
        self._last_imu = (t0, *later[0][1:]) if later else self._last_imu
        self._imu_buf.clear()
        for t, acc, gyr in later:
            self._integrate_to(t, acc, gyr)
        self.counts["initialized"] += 1
        log.info("fusion initialised at t=%.3f, yaw %.1f deg", t0, np.degrees(yaw))

    def _carry_attitude(self, t: float) -> CarriedAttitude | None:
        """The IMU-rate attitude at t and the newest biases, with their marginal sigmas."""
        st = self.propagated(t)
        P = self._recent.get(self._k, (None, None, None))[2]
        if st is None or P is None:
            return None
        try:
            P_b = self._smoother.marginalCovariance(B(self._k))
        except RuntimeError:
            return None
        return CarriedAttitude(
            t_s=t, R_map_base=matrix_from_xyzw(st.q_xyzw),
            sigma_rot_rad=np.sqrt(np.maximum(np.diag(P)[:3], 0.0)),
            bias_acc_mps2=np.asarray(self._bias.accelerometer()),
            bias_gyr_radps=np.asarray(self._bias.gyroscope()),
            sigma_bias=np.sqrt(np.maximum(np.diag(P_b), 0.0)), t0_s=t,
        )  # fmt: skip

    def _warm_start(self, t0: float, yaw_motion: float, yaw_sigma_motion: float,
                    cold_sig_b: np.ndarray):  # fmt: skip
        """The carried attitude at t0, or None (too old, an IMU gap); a carried yaw the
        motion contradicts (3 sigma) gives way to the motion's yaw and its sigma."""
        carried, self._carried = self._carried, None
        R = carried.at(t0, [(t, w) for t, _, w in self._imu_buf])
        if R is None:
            return None
        sig_rot = carried.rotation_sigmas()
        yaw = float(np.arctan2(R[1, 0], R[0, 0]))
        d_yaw = float(np.angle(np.exp(1j * (yaw - yaw_motion))))
        R = matrix_from_xyzw(xyzw_from_rpy(0.0, 0.0, -d_yaw)) @ R
        sig_rot = np.r_[sig_rot[:2], yaw_sigma_motion]
        self.counts["warm_start"] += 1
        bias = gtsam.imuBias.ConstantBias(carried.bias_acc_mps2, carried.bias_gyr_radps)
        return R, sig_rot, bias, carried.bias_sigmas(cold_sig_b)

    def _integrate_to(self, t: float, acc: np.ndarray, gyr: np.ndarray) -> None:
        t_prev = self._last_imu[0]
        while t_prev < t:
            t_kf = self._t_kf[self._k] + self.cfg.keyframe_period_s
            t_end = min(t, t_kf)
            if t_end > t_prev:
                self._pim.integrateMeasurement(acc, gyr, t_end - t_prev)
            t_prev = t_end
            if t_end >= t_kf - 1e-9:
                self._new_keyframe(t_kf)
        self._last_imu = (t, acc, gyr)

    def _new_keyframe(self, t: float) -> None:
        k, j = self._k + 1, self._k
        graph = gtsam.NonlinearFactorGraph()
        graph.add(gtsam.CombinedImuFactor(X(j), V(j), X(k), V(k), B(j), B(k), self._pim))
        pred = self._pim.predict(self._nav, self._bias)
        values = gtsam.Values()
        values.insert(X(k), pred.pose())
        values.insert(V(k), pred.velocity())
        values.insert(B(k), self._bias)
        if k % self._w_block == 0:  # a new wheel-scale block, a random walk from the last
            values.insert(self._w(k), self._scale)
            rw = self.cfg.wheel_scale_rw * np.sqrt(t - self._w_t)
            graph.add(
                gtsam.BetweenFactorVector(
                    self._w(k - 1), self._w(k), np.zeros(1), gtsam.noiseModel.Isotropic.Sigma(1, rw)
                )
            )
            self._w_t = t
        if self.cfg.gnss_bias_sigma_m > 0 and k % self._g_block == 0:  # a new bias block
            phi = float(np.exp(-(t - self._g_t) / self.cfg.gnss_bias_tau_s))
            values.insert(self._g(k), phi * self._gbias)
            q = self._gbias_cov * (1.0 - phi**2)
            graph.add(gauss_markov_factor(self._g(k - 1), self._g(k), phi, q))
            self._g_t = t
        self._t_kf[k] = t
        self._velocity_due.append(k)
        self._velocity_factors(graph, t)
        self._attitude_factor(graph, k, t)
        self._attach_pending(graph, t)
        self._update(graph, values, k, t)
        self._pim.resetIntegrationAndSetBias(self._bias)

    def _update(self, graph, values, k: int, t: float) -> None:
        keys = (
            (X(k), V(k), B(k), self._w(k), self._g(k))  # a block's stamp follows its keyframes
            if self.cfg.gnss_bias_sigma_m > 0
            else (X(k), V(k), B(k), self._w(k))
        )
        self._smoother.update(graph, values, dict.fromkeys(keys, t))
        self._k = k
        self._t_kf[k] = t
        for old in [i for i, ti in self._t_kf.items() if ti < t - self.cfg.lag_s - 1.0]:
            del self._t_kf[old]
        sm = self._smoother  # per-key estimates: the whole window would cost ~0.5 ms
        pose = sm.calculateEstimatePose3(X(k))
        vel = sm.calculateEstimateVector(V(k))
        self._nav = gtsam.NavState(pose, vel)
        self._bias = sm.calculateEstimateConstantBias(B(k))
        self._scale = sm.calculateEstimateVector(self._w(k))
        if self.cfg.gnss_bias_sigma_m > 0:
            self._gbias = sm.calculateEstimateVector(self._g(k))
        R = pose.rotation().matrix()
        P = sm.marginalCovariance(X(k))
        self._recent[k] = (pose, vel, P)
        self._recent.pop(k - RECENT_KEYFRAMES, None)
        cov = cov_ros_from_gtsam(P, R)
        self.state = NavState(
            t_s=t, p_m=pose.translation(), q_xyzw=xyzw_from_matrix(R), v_mps=vel,
            w_radps=self._last_imu[2] - self._bias.gyroscope() if self._last_imu else np.zeros(3),
            cov_pose_6x6=cov, frame_id=self.cfg.map_frame, child_frame_id=self.cfg.base_frame,
        )  # fmt: skip

    def _velocity_factors(self, graph, t_now: float) -> None:
        """Body-velocity factors for keyframes whose wheel speed is known by now.

        Wheel odometry arrives on its own topic, often later than the IMU that closes a
        keyframe (CAN gateways, a busy executor): a keyframe waits up to `wheel_wait_s`
        for a sample at or after its stamp, then takes the non-holonomic constraint alone.
        """
        c = self.cfg
        alive = bool(self._wheel) and t_now - self._wheel[-1][0] < WHEEL_ALIVE_S
        while self._velocity_due:
            k = self._velocity_due[0]
            t_k = self._t_kf.get(k)
            if t_k is None:  # left the window while waiting
                self._velocity_due.popleft()
                continue
            wheel = self._wheel_speed_at(t_k) if c.use_wheel_speed else None
            pending = alive and self._wheel[-1][0] < t_k and t_now - t_k < c.wheel_wait_s
            if wheel is None and c.use_wheel_speed and pending:
                return  # its sample may still come; later keyframes wait behind it
            self._velocity_due.popleft()
            if wheel is None:
                if c.use_wheel_speed:
                    self.counts["wheel_speed_missing"] += 1
                if c.use_nhc:
                    noise = gtsam.noiseModel.Isotropic.Sigma(2, c.nhc_sigma_mps)
                    graph.add(nonholonomic_factor(X(k), V(k), noise))
                continue
            speed, var = wheel
            sig = np.array([max(np.sqrt(var), c.wheel_sigma_mps), c.nhc_sigma_mps, c.nhc_sigma_mps])
            noise = gtsam.noiseModel.Diagonal.Sigmas(sig)
            graph.add(body_velocity_factor(X(k), V(k), self._w(k), speed, noise))
            self.counts["wheel_speed_used"] += 1
            if k != self._k + 1:  # not at its own keyframe's update: the sample came late
                self.counts["wheel_speed_late"] += 1

    def _wheel_speed_at(self, t: float) -> tuple[float, float] | None:
        """(speed, variance) at t: interpolated between the samples around it, else the
        nearest within WHEEL_NEAREST_S; None when neither exists (yet)."""
        w = self._wheel
        i = bisect.bisect_left(w, (t, -np.inf, -np.inf))
        before = w[i - 1] if i > 0 else None
        after = w[i] if i < len(w) else None
        if before is not None and after is not None and after[0] - before[0] <= WHEEL_MAX_GAP_S:
            a = 0.0 if after[0] == before[0] else (t - before[0]) / (after[0] - before[0])
            return before[1] + a * (after[1] - before[1]), max(before[2], after[2])
        near = [s for s in (before, after) if s is not None and abs(s[0] - t) <= WHEEL_NEAREST_S]
        if not near:
            return None
        s = min(near, key=lambda s: abs(s[0] - t))
        return s[1], s[2]

    def _attitude_factor(self, graph, k: int, t: float) -> None:
        att = self._imu_att
        if not self.cfg.use_imu_orientation or att is None or abs(att[0] - t) > 0.1:
            return
        noise = gtsam.noiseModel.Gaussian.Covariance(att[2])
        graph.add(gtsam.PoseRotationPrior3D(X(k), gtsam.Rot3(att[1]), noise))
        self.counts["imu_orientation_used"] += 1

    def _keyframe_before(self, t: float) -> int | None:
        for i in range(self._k, -1, -1):
            ti = self._t_kf.get(i)
            if ti is None:
                return None
            if ti <= t + 1e-9:
                return i
        return None

    def _in_window(self, j: int, t_now: float) -> bool:
        """Keyframe j is still far enough inside the smoother's window to take a factor."""
        t_j = self._t_kf.get(j)
        return t_j is not None and t_j >= t_now - self.cfg.lag_s + 2 * self.cfg.keyframe_period_s

    def _attach_pending(self, graph, t_now: float) -> None:
        keep = []
        for item in self._pending:
            t_meas, kind, data = item
            if t_meas >= t_now:
                keep.append(item)
                continue
            j = self._keyframe_before(t_meas)
            if j is None or not self._in_window(j, t_now):
                self.counts[f"{kind}_too_old"] += 1
                continue
            if kind == "gnss":
                self._gnss_factor(graph, j, t_meas, *data)
            else:
                self._pose_factor(graph, j, t_meas, data)
        self._pending = keep

    def _gnss_factor(self, graph, j: int, t_meas: float, z: np.ndarray, cov: np.ndarray) -> None:
        c = self.cfg
        dt = t_meas - self._t_kf[j]
        pose, v, P = self._keyframe(j)
        R = pose.rotation().matrix()
        biased = c.gnss_bias_sigma_m > 0
        if biased:  # the correlated share of the reported variance lives in the G state
            cov = cov - self._gbias_cov
            cov[np.diag_indices(3)] = np.maximum(np.diag(cov), c.gnss_min_sigma_m**2)
            z = z - self._gbias
        r = z - (pose.translation() + R @ self._lever + v * dt)
        H = np.hstack([-R @ skew(self._lever), R])
        S = H @ P @ H.T + cov + np.eye(3) * (0.5 * dt) ** 2
        if biased:
            # the receiver error at its stationary variance, not its joint marginal with
            # the pose: the gate then does not take a drift of g the state has not followed
            # for an outlier. With the joint (p + g known to ~0.3 m) twice as many fixes were
            # gated and the simulated car 12's outage error went 0.91 -> 16.0 m, drone
            # seeds 9-12 RMSE 1.1-7.0 -> 12.8-15.5 m (2026-12-03)
            S = S + self._gbias_cov
        inn = Innovation(t_meas, r, S, cov, float(r @ np.linalg.solve(S, r)))
        verdict = self._admission.judge(inn)
        if verdict == "refuse":
            return
        if verdict == "reset":  # start again from the fixes, after this keyframe's update
            self._diverged = True
            return
        noise = gtsam.noiseModel.Gaussian.Covariance(cov)
        if c.gnss_robust != "none":
            est = (
                gtsam.noiseModel.mEstimator.Huber.Create(c.gnss_robust_k)
                if c.gnss_robust == "huber"
                else gtsam.noiseModel.mEstimator.Cauchy.Create(c.gnss_robust_k)
            )
            noise = gtsam.noiseModel.Robust.Create(est, noise)
        # GTSAM's own C++ factor (a Python CustomFactor costs ~40 us per relinearisation);
        # the fix is moved back to the keyframe by the keyframe's velocity estimate
        if biased:
            z = z + self._gbias  # the factor estimates g itself
            factor = biased_antenna_factor(X(j), self._g(j), z - v * dt, self._lever, noise)
        else:
            factor = gtsam.GPSFactorArm(X(j), z - v * dt, self._lever, noise)
        if verdict == "use":
            graph.add(factor)
            self._admission.used(inn)
            return
        t_ref = self._t_kf[self._k]  # "hold": the run enters once complete
        for item in self._admission.hold(Held(j, factor, inn)):
            if self._in_window(item.keyframe, t_ref):
                graph.add(item.factor)
                self._admission.used(item.innovation)
            else:
                self._admission.refuse_held([item])

    def _pose_factor(self, graph, j: int, t_meas: float, fix: PoseFix) -> None:
        if self._repeats_standing_view(j, t_meas, fix.source):
            self.counts["pose_standing_repeat"] += 1
            self.decisions.append(Decision(t_meas, False, "standing_repeat"))
            return
        dt = t_meas - self._t_kf[j]
        v = self._keyframe(j)[1]
        p = fix.p_m - v * dt  # the fix moved back to the keyframe with the estimated velocity
        R = matrix_from_xyzw(fix.q_xyzw)
        cov = pose_noise_covariance(fix, self._uses_height(fix))
        cov = cov * self._correlation_scale(fix.source, t_meas)
        noise = gtsam.noiseModel.Gaussian.Covariance(cov)
        if fix.dof == 3:
            yaw = np.arctan2(R[1, 0], R[0, 0])
            z = [p[0], p[1], p[2], yaw] if planar_has_height(fix) else [p[0], p[1], yaw]
            factor = planar_pose_factor(X(j), z, noise)
        else:
            factor = gtsam.PriorFactorPose3(X(j), gtsam.Pose3(gtsam.Rot3(R), p), noise)
        if self.cfg.visual_gate_chi2 > 0:
            nis = self._pose_nis(factor, j)
            if nis > self.cfg.visual_gate_chi2:
                self.counts[f"pose{fix.dof}_gated"] += 1
                self.decisions.append(Decision(t_meas, False, f"pose{fix.dof}_gate", nis))
                return
        graph.add(factor)
        self._view_used[fix.source] = (t_meas, self._keyframe(j)[0].translation())
        self.counts[f"pose{fix.dof}_used"] += 1
        self.decisions.append(Decision(t_meas, True, f"pose{fix.dof}"))

    def _uses_height(self, fix: PoseFix) -> bool:
        """Whether a visual fix's map-frame height counts: never a planar fix's, and a
        PoseNet fix's only with posenet_use_z (its regressed height follows the terrain)."""
        return fix.dof == 6 and (fix.source != "posenet" or self.cfg.posenet_use_z)

    def _correlation_scale(self, source: str, t_meas: float) -> float:
        """Variance factor for a fix whose error is correlated with the last used fix of
        its source: (1 + a) / (1 - a), a = exp(-dt / tau), the sum over an exponentially
        correlated stream at that spacing; 1 with tau = 0 or no earlier fix."""
        tau = {
            "map_localizer": self.cfg.map_localizer_error_tau_s,
            "posenet": self.cfg.posenet_error_tau_s,
        }.get(source, 0.0)
        last = self._view_used.get(source)
        if tau <= 0 or last is None:
            return 1.0
        a = float(np.exp(-max(t_meas - last[0], 1e-3) / tau))
        return (1.0 + a) / (1.0 - a)

    def _repeats_standing_view(self, j: int, t_meas: float, source: str) -> bool:
        """Whether a visual fix would repeat one its source gave less than
        visual_standstill_period_s ago from where the vehicle still stands: the same view
        has the same error (PoseNet's was 19 deg of yaw at the demo's start), and 5 Hz of
        it counted as independent fixes made the fusion sure of it."""
        period = self.cfg.visual_standstill_period_s
        last = self._view_used.get(source)
        if period <= 0 or last is None or t_meas - last[0] >= period:
            return False
        pose, v, _ = self._keyframe(j)
        return bool(
            np.linalg.norm(v) < STANDSTILL_SPEED_MPS
            and np.linalg.norm(pose.translation() - last[1]) < STANDSTILL_MOVE_M
        )

    def _pose_nis(self, factor, j: int) -> float:
        """Mahalanobis distance of a pose factor's residual, with the state's uncertainty."""
        pose, _, P = self._keyframe(j)
        values = gtsam.Values()
        values.insert(X(j), pose)
        A, b = factor.linearize(values).jacobian()  # whitened: A = L H, b = -L r
        S = A @ P @ A.T + np.eye(len(b))
        return float(b @ np.linalg.solve(S, b))

    def _keyframe(self, j: int) -> tuple[gtsam.Pose3, np.ndarray, np.ndarray]:
        """Pose, velocity and pose marginal of keyframe j (cached for recent ones)."""
        if j in self._recent:
            return self._recent[j]
        sm = self._smoother
        return (
            sm.calculateEstimatePose3(X(j)),
            sm.calculateEstimateVector(V(j)),
            sm.marginalCovariance(X(j)),
        )

    def propagated(self, t: float) -> NavState | None:
        """The newest keyframe state carried to IMU time t by the running preintegration."""
        if self._nav is None or self.state is None:
            return None
        nav = self._pim.predict(self._nav, self._bias)
        return NavState(
            t_s=t, p_m=nav.position(), q_xyzw=xyzw_from_rot3(nav.attitude()), v_mps=nav.velocity(),
            w_radps=self._last_imu[2] - self._bias.gyroscope(),
            cov_pose_6x6=self.state.cov_pose_6x6,
            frame_id=self.cfg.map_frame, child_frame_id=self.cfg.base_frame,
        )  # fmt: skip
