"""Smooth ground-truth trajectories for the simulator: a car on terrain, a survey drone.

The simulated IMU is derived from these trajectories, so velocity and acceleration are
analytic derivatives of position (splines composed by the chain rule, never finite
differences of positions) and the motion is C4, so that strapdown integration of the
noise-free IMU reproduces the path. Frames: world = local ENU map frame [m];
base_link = FLU body frame (x forward, y left, z up).

Construction: the route polyline is resampled by arc length, its corners are cut by a
Gaussian filter along the arc (radius about 0.89 sigma for a 90 degree corner), and the
result becomes a quintic spline P(s) parametrised by arc length. A speed profile v(s)
(cruise, lateral-acceleration limit, stops, forward/backward acceleration passes) is
turned into v(t), smoothed with a Gaussian in time and represented as a quintic B-spline
with non-negative coefficients, so the speed is smooth and never negative; s(t) is its
exact antiderivative and p(t) = P(s(t)).
"""

from __future__ import annotations

import abc
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline, make_interp_spline
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import xyzw_from_matrix
from geoloc_ros.types import NavState

log = logging.getLogger(__name__)

# terrain(x_m, y_m) -> (z_m, dz_dx, dz_dy), vectorised (geoloc_ros.sim.terrain.Terrain fits).
TerrainFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]

GRAVITY_NOMINAL_MPS2 = 9.80665  # only for the drone's thrust direction (attitude shape)
RADIUS_PER_SIGMA = float(np.sqrt(np.pi) / 2.0)  # 90-degree corner radius / Gaussian sigma
STOPPED_MPS = 0.05  # below this speed a vehicle counts as standing

_OMEGA_STEP_S = 1e-4  # central difference of R(t) for the body rate
_PATH_SAMPLE_M = 1.0  # resampling step of the route before corner cutting
_ARC_KNOT_M = 0.5  # knot spacing of the arc-length spline P(s)
_PROFILE_DS_M = 0.2  # arc-length step of the speed planner
_SPEED_GRID_S = 0.02  # time step of the speed B-spline
_SPLINE_GRID_S = 0.05  # time step of the height (car) and yaw (drone) splines
_LAT_MARGIN = 0.85  # plan below the lateral limit: time smoothing may overshoot a little
_MIN_PLAN_MPS = 0.3  # speed floor of the planner away from stops (cusps, sharp kinks)


@dataclass(frozen=True, eq=False)
class TrajectoryState:
    """Kinematic state of base_link at N times; world = ENU map frame, SI units."""

    t_s: np.ndarray  # (N,)
    p_m: np.ndarray  # (N, 3) world
    v_mps: np.ndarray  # (N, 3) world
    a_mps2: np.ndarray  # (N, 3) world, kinematic (no gravity)
    R_world_base: np.ndarray  # (N, 3, 3)
    w_base_radps: np.ndarray  # (N, 3) angular velocity in base_link axes

    @property
    def q_xyzw(self) -> np.ndarray:
        """Orientation of base_link in the world as (N, 4) quaternions, w >= 0."""
        return xyzw_from_matrix(self.R_world_base)

    @property
    def speed_mps(self) -> np.ndarray:
        return np.linalg.norm(self.v_mps, axis=1)


class Trajectory(abc.ABC):
    """Rigid motion of base_link in the world frame over [t0_s, t1_s].

    Subclasses implement `_translation` (p, v, a) and `_rotation` (R_world_base); the
    body rate comes from a central difference of the rotation (h = 1e-4 s).
    """

    def __init__(self, t0_s: float, t1_s: float) -> None:
        if not (np.isfinite(t0_s) and np.isfinite(t1_s) and t1_s > t0_s):
            raise ConfigError(f"trajectory needs finite t0_s < t1_s, got [{t0_s}, {t1_s}]")
        self.t0_s = float(t0_s)
        self.t1_s = float(t1_s)

    @property
    def duration_s(self) -> float:
        return self.t1_s - self.t0_s

    @abc.abstractmethod
    def _translation(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, velocity, acceleration (N, 3) in the world frame at t_s (N,)."""

    @abc.abstractmethod
    def _rotation(self, t_s: np.ndarray) -> np.ndarray:
        """R_world_base (N, 3, 3) at t_s (N,)."""

    def times(
        self, rate_hz: float, t_start_s: float | None = None, t_end_s: float | None = None
    ) -> np.ndarray:
        """Sample times t_start + k / rate within [t_start, t_end] (default: the whole span)."""
        if not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ConfigError(f"rate_hz must be positive, got {rate_hz}")
        t_a = self.t0_s if t_start_s is None else float(t_start_s)
        t_b = self.t1_s if t_end_s is None else float(t_end_s)
        if not (self.t0_s - 1e-9 <= t_a <= t_b <= self.t1_s + 1e-9):
            raise ConfigError(
                f"time window [{t_a}, {t_b}] is not inside the trajectory "
                f"[{self.t0_s}, {self.t1_s}]"
            )
        n = int(np.floor((t_b - t_a) * rate_hz + 1e-9)) + 1
        return t_a + np.arange(n) / rate_hz

    def _check_times(self, t_s) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        if t.ndim != 1:
            raise ConfigError(f"times must be a 1-D array, got shape {t.shape}")
        if t.size and not (
            np.isfinite(t).all() and t.min() >= self.t0_s - 1e-9 and t.max() <= self.t1_s + 1e-9
        ):
            raise ConfigError(
                f"times [{t.min()}, {t.max()}] leave the trajectory [{self.t0_s}, {self.t1_s}]"
            )
        return np.clip(t, self.t0_s, self.t1_s)

    def state(self, t_s) -> TrajectoryState:
        """Position, velocity, acceleration, attitude and body rate at the times t_s."""
        t = self._check_times(t_s)
        p, v, a = self._translation(t)
        return TrajectoryState(
            t_s=t,
            p_m=p,
            v_mps=v,
            a_mps2=a,
            R_world_base=self._rotation(t),
            w_base_radps=self._body_rate(t),
        )

    def _body_rate(self, t: np.ndarray) -> np.ndarray:
        """omega_base = log(R(t-h)^T R(t+h)) / 2h, one-sided at the ends of the span."""
        tm = np.maximum(t - _OMEGA_STEP_S, self.t0_s)
        tp = np.minimum(t + _OMEGA_STEP_S, self.t1_s)
        rel = np.einsum("nji,njk->nik", self._rotation(tm), self._rotation(tp))
        return Rotation.from_matrix(rel).as_rotvec() / (tp - tm)[:, None]

    def nav_states(self, t_s, frame_id: str = "map") -> list[NavState]:
        """Ground truth as NavState (velocity in the world frame, rate in base_link)."""
        st = self.state(t_s)
        q = st.q_xyzw
        return [
            NavState(
                t_s=float(st.t_s[i]),
                p_m=st.p_m[i],
                q_xyzw=q[i],
                v_mps=st.v_mps[i],
                w_radps=st.w_base_radps[i],
                frame_id=frame_id,
            )
            for i in range(st.t_s.size)
        ]

    def stopped(self, t_s, threshold_mps: float = STOPPED_MPS) -> np.ndarray:
        """True where the vehicle's speed is below `threshold_mps`."""
        t = self._check_times(t_s)
        return np.linalg.norm(self._translation(t)[1], axis=1) < threshold_mps


# --- path geometry ---------------------------------------------------------------------


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value}")


def _polyline(points, dim: int, name: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != dim or pts.shape[0] < 2:
        raise ConfigError(f"{name} must be an (M, {dim}) array with M >= 2, got {pts.shape}")
    if not np.isfinite(pts).all():
        raise ConfigError(f"{name} contains NaN or infinite coordinates")
    keep = np.r_[True, np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-6]
    pts = pts[keep]
    if pts.shape[0] < 2:
        raise ConfigError(f"{name} has fewer than two distinct points")
    return pts


def _smooth_path(points: np.ndarray, corner_radius_m: float) -> tuple[BSpline, float]:
    """Arc-length quintic spline P(s) of a polyline whose corners are rounded off.

    The polyline is extended straight beyond both ends, resampled every metre, filtered
    with a Gaussian along the arc, interpolated, and re-parametrised by arc length.
    """
    seg = np.diff(points, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    cum = np.r_[0.0, np.cumsum(seg_len)]
    length0 = float(cum[-1])
    sigma = corner_radius_m / RADIUS_PER_SIGMA
    n = max(int(np.ceil(length0 / _PATH_SAMPLE_M)), 8)
    h = length0 / n
    n_pad = int(np.ceil(4.0 * sigma / h)) + 2
    u = np.arange(-n_pad, n + n_pad + 1) * h
    inner = np.clip(u, 0.0, length0)
    pts = np.stack([np.interp(inner, cum, points[:, d]) for d in range(points.shape[1])], -1)
    d0, d1 = seg[0] / seg_len[0], seg[-1] / seg_len[-1]
    pts += np.minimum(u, 0.0)[:, None] * d0 + np.maximum(u - length0, 0.0)[:, None] * d1
    smooth = gaussian_filter1d(pts, sigma / h, axis=0, mode="nearest", truncate=4.0)
    u, smooth = u[n_pad : n_pad + n + 1], smooth[n_pad : n_pad + n + 1]
    Q = make_interp_spline(u, smooth, k=5)
    # arc length of the smoothed curve by Simpson's rule on a fine grid
    m = 16 * n
    uf = np.linspace(0.0, length0, m + 1)
    speed = np.linalg.norm(Q.derivative()(uf), axis=1)
    mid = np.linalg.norm(Q.derivative()(0.5 * (uf[:-1] + uf[1:])), axis=1)
    sf = np.r_[0.0, np.cumsum((speed[:-1] + 4.0 * mid + speed[1:]) * (uf[1] - uf[0]) / 6.0)]
    length = float(sf[-1])
    s_nodes = np.linspace(0.0, length, max(int(np.ceil(length / _ARC_KNOT_M)), 8) + 1)
    P = make_interp_spline(s_nodes, Q(np.interp(s_nodes, sf, uf)), k=5)
    return P, length


def _plan_speed(
    v_limit: np.ndarray, zero_idx: Sequence[int], ds: float, accel: float, decel: float
) -> np.ndarray:
    """Forward/backward passes: v <= limit, v = 0 at zero_idx, |dv/dt| within limits."""
    v = v_limit.copy()
    v[list(zero_idx)] = 0.0
    vv = v.tolist()  # plain floats: this loop runs once per 0.2 m of route
    up, down = 2.0 * accel * ds, 2.0 * decel * ds
    for i in range(1, len(vv)):
        vv[i] = min(vv[i], math.sqrt(vv[i - 1] ** 2 + up))
    for i in range(len(vv) - 2, -1, -1):
        vv[i] = min(vv[i], math.sqrt(vv[i + 1] ** 2 + down))
    return np.array(vv)


@dataclass(frozen=True)
class _Timing:
    speed: BSpline  # ds/dt(t)
    accel: BSpline  # d2s/dt2(t)
    arc: BSpline  # s(t)
    t1_s: float
    stop_windows_s: tuple[tuple[float, float], ...]


def _time_parametrise(
    s: np.ndarray,
    v: np.ndarray,
    stop_idx: Sequence[int],
    stop_duration_s: float,
    rest_s: float,
    sigma_s: float,
    t0_s: float,
) -> _Timing:
    """Speed B-spline over time from v(s): dwell at stops, rest at the ends, Gaussian smoothing.

    Each stop stands `stop_duration_s + 4 sigma` in the raw profile; the reported window
    is its central `stop_duration_s`, where the smoothed speed is below about 0.01 m/s.
    Non-negative B-spline coefficients make the speed non-negative everywhere.
    """
    margin = 2.0 * sigma_s
    pad = rest_s + 4.0 * sigma_s
    pad_start = pad if v[0] == 0.0 else 0.0  # a rolling start moves from t0 on
    dt_nodes = 2.0 * np.diff(s) / np.maximum(v[:-1] + v[1:], 1e-9)
    t_nodes = np.r_[0.0, np.cumsum(dt_nodes)] + pad_start
    t_list, v_list = [np.array([0.0])], [np.array([v[0]])]
    windows, prev, shift = [], 0, 0.0
    for i in sorted(stop_idx):
        t_list.append(t_nodes[prev : i + 1] + shift)
        v_list.append(v[prev : i + 1])
        t_arrive = t_nodes[i] + shift
        shift += stop_duration_s + 2.0 * margin
        windows.append((t_arrive + margin, t_arrive + margin + stop_duration_s))
        prev = i
    t_list.append(t_nodes[prev:] + shift)
    v_list.append(v[prev:])
    t_end = t_list[-1][-1]
    t_list.append(np.array([t_end + pad]))
    v_list.append(np.array([v[-1]]))
    t_raw, v_raw = np.concatenate(t_list), np.concatenate(v_list)
    duration = float(t_raw[-1])
    n = int(np.ceil(duration / _SPEED_GRID_S))
    dt = duration / n
    k, ext = 5, 3  # spline degree; samples beyond each end so the spline covers [0, duration]
    g = 4 * int(np.ceil(sigma_s / dt)) + 1  # room for the Gaussian filter, trimmed after
    tau = np.arange(-ext - g, n + ext + g + 1) * dt
    v_grid = np.interp(tau, t_raw, v_raw)  # constant beyond the ends
    coef = np.maximum(gaussian_filter1d(v_grid, sigma_s / dt, mode="nearest")[g:-g], 0.0)
    # uniform knots whose Greville abscissae are the grid times (Schoenberg quasi-interpolant)
    knots = (np.arange(coef.size + k + 1) - ext - (k + 1) // 2) * dt
    speed = BSpline(knots + t0_s, coef, k, extrapolate=False)
    arc = speed.antiderivative()
    s_end = float(arc(t0_s + duration) - arc(t0_s))
    scale = float(s[-1]) / s_end
    speed = BSpline(knots + t0_s, coef * scale, k, extrapolate=False)
    arc = speed.antiderivative()
    arc = BSpline(arc.t, arc.c - float(arc(t0_s)), arc.k, extrapolate=False)
    return _Timing(
        speed=speed,
        accel=speed.derivative(),
        arc=arc,
        t1_s=t0_s + duration,
        stop_windows_s=tuple((t0_s + a, t0_s + b) for a, b in windows),
    )


def _curvature(P: BSpline, s: np.ndarray) -> np.ndarray:
    """Curvature [1/m] of the spline P(s) (2-D or 3-D) at s."""
    d1, d2 = P.derivative(1)(s), P.derivative(2)(s)
    if d1.shape[1] == 2:
        cross = np.abs(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0])
    else:
        cross = np.linalg.norm(np.cross(d1, d2), axis=1)
    return cross / np.maximum(np.linalg.norm(d1, axis=1), 1e-9) ** 3


def _spline_of_time(t0_s: float, t1_s: float, values_fn: Callable) -> BSpline:
    """Quintic interpolating spline through values_fn(t) sampled every 0.05 s over [t0, t1]."""
    n = max(int(np.ceil((t1_s - t0_s) / _SPLINE_GRID_S)), 8)
    t = np.linspace(t0_s, t1_s, n + 1)
    return make_interp_spline(t, values_fn(t), k=5)


# --- car -------------------------------------------------------------------------------


class CarTrajectory(Trajectory):
    """A car following a lane centre on smooth terrain; build it with `from_route`.

    base_link sits on the road surface: z = terrain(x, y), yaw along the path tangent,
    body z along the surface normal (pitch/roll from the terrain slope).
    """

    def __init__(
        self,
        path_xy: BSpline,
        route_length_m: float,
        timing: _Timing,
        terrain: TerrainFn,
        t0_s: float,
    ) -> None:
        super().__init__(t0_s, timing.t1_s)
        self._P = path_xy
        self._P1 = path_xy.derivative(1)
        self._P2 = path_xy.derivative(2)
        self._timing = timing
        self._terrain = terrain
        self.route_length_m = float(route_length_m)
        self.stop_windows_s = timing.stop_windows_s
        self._z = _spline_of_time(self.t0_s, self.t1_s, self._terrain_height)
        self._z1 = self._z.derivative(1)
        self._z2 = self._z.derivative(2)

    @classmethod
    def from_route(
        cls,
        route_xy_m: np.ndarray,
        terrain: TerrainFn,
        *,
        cruise_mps: float = 10.0,
        max_lat_accel_mps2: float = 2.0,
        max_accel_mps2: float = 1.5,
        max_decel_mps2: float = 2.5,
        stops_s_m: Sequence[float] = (),
        stop_duration_s: float = 3.0,
        start_at_rest: bool = True,
        rest_s: float = 2.0,
        corner_radius_m: float = 8.0,
        speed_smoothing_s: float = 0.5,
        t0_s: float = 0.0,
    ) -> CarTrajectory:
        """Drive along a lane-centre polyline (M, 2), standing `stop_duration_s` at each stop.

        `stops_s_m` are arc-length positions along the smoothed route; the car stands
        `rest_s` at the end (and at the start if `start_at_rest`, else it starts rolling
        at its planned speed). Corners get a turn radius of about `corner_radius_m`.
        """
        _check_positive(
            cruise_mps=cruise_mps,
            max_lat_accel_mps2=max_lat_accel_mps2,
            max_accel_mps2=max_accel_mps2,
            max_decel_mps2=max_decel_mps2,
            stop_duration_s=stop_duration_s,
            corner_radius_m=corner_radius_m,
            speed_smoothing_s=speed_smoothing_s,
        )
        if not (np.isfinite(rest_s) and rest_s >= 0):
            raise ConfigError(f"rest_s must be >= 0, got {rest_s}")
        route = _polyline(route_xy_m, 2, "route_xy_m")
        z, gx, gy = (np.asarray(a, dtype=np.float64) for a in terrain(route[:, 0], route[:, 1]))
        if not all(a.shape == (route.shape[0],) and np.isfinite(a).all() for a in (z, gx, gy)):
            raise ConfigError("terrain(x, y) must return finite (z, dz_dx, dz_dy) shaped like x")
        P, length = _smooth_path(route, corner_radius_m)
        n = max(int(np.ceil(length / _PROFILE_DS_M)), 2)
        s = np.linspace(0.0, length, n + 1)
        kappa = _curvature(P, s)
        v_lim = np.minimum(
            cruise_mps,
            np.maximum(
                np.sqrt(_LAT_MARGIN * max_lat_accel_mps2 / np.maximum(kappa, 1e-12)), _MIN_PLAN_MPS
            ),
        )
        stops = sorted(float(x) for x in stops_s_m)
        for x in stops:
            if not (np.isfinite(x) and 0.0 < x < length):
                raise ConfigError(
                    f"stop at s = {x} m is not inside the route (length {length:.1f} m)"
                )
        stop_idx = sorted({round(x / (length / n)) for x in stops})
        zero_idx = [*stop_idx, n] + ([0] if start_at_rest else [])
        v = _plan_speed(v_lim, zero_idx, length / n, max_accel_mps2, max_decel_mps2)
        timing = _time_parametrise(s, v, stop_idx, stop_duration_s, rest_s, speed_smoothing_s, t0_s)
        log.debug("car route %.1f m, %.1f s, %d stops", length, timing.t1_s - t0_s, len(stops))
        return cls(P, length, timing, terrain, t0_s)

    def _arc(self, t: np.ndarray) -> np.ndarray:
        return np.clip(self._timing.arc(t), 0.0, self.route_length_m)

    def _terrain_height(self, t: np.ndarray) -> np.ndarray:
        xy = self._P(self._arc(t))
        return np.asarray(self._terrain(xy[:, 0], xy[:, 1])[0], dtype=np.float64)

    def arc_length_m(self, t_s) -> np.ndarray:
        """Distance travelled along the route at t_s."""
        return self._arc(self._check_times(t_s))

    def _translation(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self._arc(t)
        sd = np.nan_to_num(self._timing.speed(t))
        sdd = np.nan_to_num(self._timing.accel(t))
        d1, d2 = self._P1(s), self._P2(s)
        p = np.column_stack([self._P(s), self._z(t)])
        v = np.column_stack([d1 * sd[:, None], self._z1(t)])
        a = np.column_stack([d2 * sd[:, None] ** 2 + d1 * sdd[:, None], self._z2(t)])
        return p, v, a

    def _rotation(self, t: np.ndarray) -> np.ndarray:
        s = self._arc(t)
        xy, d1 = self._P(s), self._P1(s)
        h = d1 / np.linalg.norm(d1, axis=1, keepdims=True)
        _, gx, gy = (np.asarray(a, dtype=np.float64) for a in self._terrain(xy[:, 0], xy[:, 1]))
        slope = gx * h[:, 0] + gy * h[:, 1]  # dz per metre along the heading
        x_b = np.column_stack([h, slope]) / np.sqrt(1.0 + slope**2)[:, None]
        z_b = np.column_stack([-gx, -gy, np.ones_like(gx)])
        z_b /= np.linalg.norm(z_b, axis=1, keepdims=True)
        y_b = np.cross(z_b, x_b)
        return np.stack([x_b, y_b, z_b], axis=-1)


# --- drone -----------------------------------------------------------------------------


class DroneTrajectory(Trajectory):
    """A multirotor flying a smoothed 3-D path; build it with `from_waypoints` or `survey`.

    Attitude: body z along the thrust (a + g e_z), body x heading along the smoothed track
    yaw (held through vertical segments and hover) or a fixed yaw.
    """

    def __init__(
        self,
        path: BSpline,
        route_length_m: float,
        timing: _Timing,
        yaw_mode: str,
        fixed_yaw_rad: float,
        yaw_smoothing_s: float,
        t0_s: float,
    ) -> None:
        super().__init__(t0_s, timing.t1_s)
        self._P = path
        self._P1 = path.derivative(1)
        self._P2 = path.derivative(2)
        self._timing = timing
        self.route_length_m = float(route_length_m)
        self.yaw_mode = yaw_mode
        if yaw_mode == "track":
            n = max(int(np.ceil(self.duration_s / _SPLINE_GRID_S)), 8)
            t = np.linspace(self.t0_s, self.t1_s, n + 1)
            yaw = gaussian_filter1d(
                self._track_yaw(t), yaw_smoothing_s / (t[1] - t[0]), mode="nearest"
            )
            self._yaw = make_interp_spline(t, yaw, k=5)
        else:
            self._yaw = BSpline(np.r_[[t0_s] * 6, [self.t1_s] * 6], np.full(6, fixed_yaw_rad), 5)

    @classmethod
    def from_waypoints(
        cls,
        waypoints_enu_m: np.ndarray,
        *,
        cruise_mps: float = 8.0,
        max_accel_mps2: float = 1.5,
        max_lat_accel_mps2: float = 2.0,
        max_climb_mps: float = 3.0,
        yaw_mode: str = "track",
        fixed_yaw_rad: float = 0.0,
        corner_radius_m: float = 10.0,
        hover_s: float = 2.0,
        speed_smoothing_s: float = 0.5,
        yaw_smoothing_s: float = 1.0,
        t0_s: float = 0.0,
    ) -> DroneTrajectory:
        """Fly near the waypoints (M, 3) (corners cut), hovering `hover_s` at both ends.

        Vertical speed is limited to `max_climb_mps`; yaw_mode "track" heads along the
        horizontal track, "fixed" keeps `fixed_yaw_rad` (ENU: 0 = east).
        """
        _check_positive(
            cruise_mps=cruise_mps,
            max_accel_mps2=max_accel_mps2,
            max_lat_accel_mps2=max_lat_accel_mps2,
            max_climb_mps=max_climb_mps,
            corner_radius_m=corner_radius_m,
            speed_smoothing_s=speed_smoothing_s,
            yaw_smoothing_s=yaw_smoothing_s,
        )
        if yaw_mode not in ("track", "fixed"):
            raise ConfigError(f"yaw_mode must be 'track' or 'fixed', got {yaw_mode!r}")
        if not (np.isfinite(hover_s) and hover_s >= 0):
            raise ConfigError(f"hover_s must be >= 0, got {hover_s}")
        pts = _polyline(waypoints_enu_m, 3, "waypoints_enu_m")
        P, length = _smooth_path(pts, corner_radius_m)
        n = max(int(np.ceil(length / _PROFILE_DS_M)), 2)
        s = np.linspace(0.0, length, n + 1)
        kappa = _curvature(P, s)
        d1 = P.derivative(1)(s)
        vz = np.abs(d1[:, 2]) / np.linalg.norm(d1, axis=1)
        v_lim = np.minimum.reduce(
            [
                np.full_like(s, cruise_mps),
                np.sqrt(_LAT_MARGIN * max_lat_accel_mps2 / np.maximum(kappa, 1e-12)),
                max_climb_mps / np.maximum(vz, 1e-12),
            ]
        )
        v = _plan_speed(
            np.maximum(v_lim, _MIN_PLAN_MPS), [0, n], length / n, max_accel_mps2, max_accel_mps2
        )
        timing = _time_parametrise(s, v, [], 0.0, hover_s, speed_smoothing_s, t0_s)
        return cls(P, length, timing, yaw_mode, float(fixed_yaw_rad), yaw_smoothing_s, t0_s)

    @classmethod
    def survey(
        cls,
        center_xy_m: Sequence[float],
        size_m: float | Sequence[float],
        altitude_m: float,
        line_spacing_m: float,
        terrain: TerrainFn,
        transit_from_xy_m: Sequence[float] | None = None,
        altitude_changes: bool = True,
        *,
        altitude_range_m: tuple[float, float] = (50.0, 120.0),
        sample_m: float = 10.0,
        **kwargs,
    ) -> DroneTrajectory:
        """Lawnmower survey (lines along x, stepping in y) after an optional transit leg.

        Heights follow the terrain (waypoints every `sample_m`); with `altitude_changes`
        line i flies at (altitude_m, max, min of altitude_range_m)[i % 3] above terrain.
        Other keyword arguments go to `from_waypoints`.
        """
        size = np.broadcast_to(np.asarray(size_m, dtype=np.float64), (2,))
        _check_positive(
            altitude_m=altitude_m,
            line_spacing_m=line_spacing_m,
            sample_m=sample_m,
            size_x_m=float(size[0]),
            size_y_m=float(size[1]),
        )
        cx, cy = (float(c) for c in center_xy_m)
        lo, hi = (float(a) for a in altitude_range_m)
        if not (0 < lo <= hi):
            raise ConfigError(f"altitude_range_m must be 0 < min <= max, got {altitude_range_m}")
        levels = (altitude_m, hi, lo) if altitude_changes else (altitude_m,)
        n_lines = int(np.floor(size[1] / line_spacing_m + 1e-9)) + 1
        ys = cy - size[1] / 2 + np.arange(n_lines) * line_spacing_m
        legs = []

        def leg(a_xy, b_xy, agl: float) -> np.ndarray:
            m = max(int(np.ceil(np.hypot(*(np.subtract(b_xy, a_xy))) / sample_m)), 1)
            f = np.linspace(0.0, 1.0, m + 1)[:, None]
            xy = (1 - f) * np.asarray(a_xy, dtype=np.float64) + f * np.asarray(b_xy, float)
            z = np.asarray(terrain(xy[:, 0], xy[:, 1])[0], dtype=np.float64) + agl
            return np.column_stack([xy, z])

        x_a, x_b = cx - size[0] / 2, cx + size[0] / 2
        first = (x_a, ys[0])
        if transit_from_xy_m is not None:
            legs.append(leg(tuple(float(c) for c in transit_from_xy_m), first, levels[0])[:-1])
        for i, y in enumerate(ys):
            a, b = ((x_a, y), (x_b, y)) if i % 2 == 0 else ((x_b, y), (x_a, y))
            legs.append(leg(a, b, levels[i % len(levels)]))
        return cls.from_waypoints(np.concatenate(legs), **kwargs)

    def _track_yaw(self, t: np.ndarray) -> np.ndarray:
        """Unwrapped heading of the horizontal path tangent; held where the path is steep."""
        d1 = self._P1(self._arc(t))
        horiz = np.hypot(d1[:, 0], d1[:, 1])
        yaw = np.arctan2(d1[:, 1], d1[:, 0])
        valid = horiz > 0.3
        if not valid.any():
            return np.zeros_like(t)
        idx = np.where(valid, np.arange(t.size), 0)
        np.maximum.accumulate(idx, out=idx)
        idx[: np.argmax(valid)] = np.argmax(valid)
        return np.unwrap(yaw[idx])

    def _arc(self, t: np.ndarray) -> np.ndarray:
        return np.clip(self._timing.arc(t), 0.0, self.route_length_m)

    def _translation(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self._arc(t)
        sd = np.nan_to_num(self._timing.speed(t))[:, None]
        sdd = np.nan_to_num(self._timing.accel(t))[:, None]
        d1 = self._P1(s)
        return self._P(s), d1 * sd, self._P2(s) * sd**2 + d1 * sdd

    def _rotation(self, t: np.ndarray) -> np.ndarray:
        a = self._translation(t)[2]
        z_b = a + np.array([0.0, 0.0, GRAVITY_NOMINAL_MPS2])
        z_b /= np.linalg.norm(z_b, axis=1, keepdims=True)
        yaw = self._yaw(t)
        x_c = np.column_stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)])
        y_b = np.cross(z_b, x_c)
        y_b /= np.linalg.norm(y_b, axis=1, keepdims=True)
        x_b = np.cross(y_b, z_b)
        return np.stack([x_b, y_b, z_b], axis=-1)
