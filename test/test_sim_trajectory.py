"""Ground-truth trajectories: limits, stops, terrain attitude and exact derivatives."""

from __future__ import annotations

import numpy as np
import pytest

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import matrix_from_xyzw
from geoloc_ros.sim.trajectory import CarTrajectory, DroneTrajectory, TrajectoryState
from test.sim_fixtures import HILLS, ROUTE

CRUISE = 10.0
LAT_MAX = 2.0
ACC_MAX, DEC_MAX = 1.5, 2.5
STOP_S = 150.0


terrain = HILLS


def terrain_normal(p: np.ndarray) -> np.ndarray:
    _, gx, gy = terrain(p[:, 0], p[:, 1])
    n = np.column_stack([-gx, -gy, np.ones_like(gx)])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _make_car() -> CarTrajectory:
    return CarTrajectory.from_route(
        ROUTE,
        terrain,
        cruise_mps=CRUISE,
        max_lat_accel_mps2=LAT_MAX,
        max_accel_mps2=ACC_MAX,
        max_decel_mps2=DEC_MAX,
        stops_s_m=[STOP_S],
        stop_duration_s=3.0,
    )


@pytest.fixture(scope="module")
def car() -> CarTrajectory:
    return _make_car()


@pytest.fixture(scope="module")
def car_state(car) -> TrajectoryState:
    return car.state(car.times(100.0))


@pytest.fixture(scope="module")
def drone() -> DroneTrajectory:
    wp = np.array([(0, 0, 50), (150, 0, 60), (150, 120, 80), (0, 120, 70)], float)
    return DroneTrajectory.from_waypoints(wp, cruise_mps=8.0, max_accel_mps2=1.5)


def forward_speed(st: TrajectoryState) -> np.ndarray:
    return np.einsum("ni,ni->n", st.R_world_base[:, :, 0], st.v_mps)


def lateral_accel(st: TrajectoryState) -> np.ndarray:
    vh, ah = st.v_mps[:, :2], st.a_mps2[:, :2]
    speed = np.linalg.norm(vh, axis=1)
    return np.abs(vh[:, 0] * ah[:, 1] - vh[:, 1] * ah[:, 0]) / np.maximum(speed, 1e-9)


def test_car_respects_speed_and_acceleration_limits(car, car_state):
    st = car_state
    speed = st.speed_mps
    assert speed.max() <= CRUISE + 0.05
    assert speed.max() > 0.95 * CRUISE  # it does reach cruise on the long straight
    moving = speed > 0.5
    assert lateral_accel(st)[moving].max() <= 1.1 * LAT_MAX
    along = np.einsum("ni,ni->n", st.v_mps, st.a_mps2)[moving] / speed[moving]
    assert along.max() <= 1.1 * ACC_MAX
    assert along.min() >= -1.1 * DEC_MAX
    assert speed[0] < 1e-3 and speed[-1] < 1e-3  # starts and ends at rest
    assert 50.0 < car.duration_s < 120.0


def test_car_never_reverses(car, car_state):
    assert forward_speed(car_state).min() >= -1e-6
    s = car.arc_length_m(car.times(50.0))
    assert np.diff(s).min() >= -1e-9
    assert s[0] == pytest.approx(0.0, abs=1e-6)
    assert s[-1] == pytest.approx(car.route_length_m, abs=1e-6)


def test_car_stands_still_during_the_stop(car):
    (start, end), *more = car.stop_windows_s
    assert not more
    assert end - start == pytest.approx(3.0)
    t = np.linspace(start, end, 301)
    assert car.state(t).speed_mps.max() < 0.05
    assert car.stopped(t).all()
    assert car.arc_length_m(t) == pytest.approx(STOP_S, abs=0.5)
    assert car.state([start - 6.0, end + 6.0]).speed_mps.min() > 1.0  # it moves around it
    assert not car.stopped([start - 6.0, end + 6.0]).any()


def test_car_follows_the_route_and_rounds_the_corner(car, car_state):
    p = car_state.p_m
    on_first = (p[:, 0] > 20) & (p[:, 0] < 260)
    assert np.abs(p[on_first, 1]).max() < 0.05  # straight segments stay on the lane centre
    on_second = (p[:, 1] > 40) & (p[:, 1] < 230)
    assert np.abs(p[on_second, 0] - 300.0).max() < 0.05
    assert np.linalg.norm(p[0, :2] - ROUTE[0]) < 0.05
    assert np.linalg.norm(p[-1, :2] - ROUTE[-1]) < 0.05
    assert 540.0 < car.route_length_m < 550.0  # 550 m polyline minus the cut corner
    st = car_state
    moving = st.speed_mps > 1.0
    radius = st.speed_mps[moving] ** 2 / np.maximum(lateral_accel(st)[moving], 1e-9)
    assert 6.0 < radius.min() < 12.0


def test_car_derivatives_are_consistent(car):
    h = 1e-3
    t = np.linspace(car.t0_s + 0.01, car.t1_s - 0.01, 4001)
    s0, sp, sm = car.state(t), car.state(t + h), car.state(t - h)
    np.testing.assert_allclose((sp.p_m - sm.p_m) / (2 * h), s0.v_mps, atol=1e-4)
    np.testing.assert_allclose((sp.v_mps - sm.v_mps) / (2 * h), s0.a_mps2, atol=1e-3)
    # continuity: no jumps between dense samples
    dense = car.state(np.linspace(car.t0_s, car.t1_s, 20001))
    step = np.linalg.norm(np.diff(dense.p_m, axis=0), axis=1)
    assert step.max() < 1.05 * CRUISE * (car.duration_s / 20000)
    # body rate: R(t)^T R(t + h) = exp(h w)
    rel = np.einsum("nji,njk->nik", s0.R_world_base, sp.R_world_base)
    from scipy.spatial.transform import Rotation

    w_fd = Rotation.from_matrix(rel).as_rotvec() / h
    w_mid = 0.5 * (s0.w_base_radps + sp.w_base_radps)
    np.testing.assert_allclose(w_fd, w_mid, atol=1e-5)
    assert np.abs(s0.w_base_radps[:, 2]).max() > 0.3  # the turn is in there


def test_car_sits_on_the_terrain_with_its_z_axis_along_the_normal(car_state):
    st = car_state
    z, _, _ = terrain(st.p_m[:, 0], st.p_m[:, 1])
    np.testing.assert_allclose(st.p_m[:, 2], z, atol=1e-3)
    cos = np.einsum("ni,ni->n", st.R_world_base[:, :, 2], terrain_normal(st.p_m))
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0
    # nose up when climbing, down when descending
    moving = st.speed_mps > 1.0
    climb = st.v_mps[moving, 2] / st.speed_mps[moving]
    nose = st.R_world_base[moving, 2, 0]
    assert (np.sign(nose[np.abs(climb) > 0.005]) == np.sign(climb[np.abs(climb) > 0.005])).all()
    np.testing.assert_allclose(nose, climb, atol=1e-6)
    # heading along the velocity; no sideslip
    fwd = forward_speed(st)[moving]
    assert np.abs(fwd - st.speed_mps[moving]).max() < 1e-6


def test_car_nav_states_match_the_state(car):
    t = np.array([car.t0_s, 20.0, 40.0])
    states = car.nav_states(t)
    st = car.state(t)
    assert [s.frame_id for s in states] == ["map"] * 3
    assert [s.child_frame_id for s in states] == ["base_link"] * 3
    for i, ns in enumerate(states):
        np.testing.assert_allclose(ns.p_m, st.p_m[i])
        np.testing.assert_allclose(ns.v_mps, st.v_mps[i])
        np.testing.assert_allclose(ns.w_radps, st.w_base_radps[i])
        np.testing.assert_allclose(matrix_from_xyzw(ns.q_xyzw), st.R_world_base[i], atol=1e-12)


def test_car_is_deterministic_and_can_start_rolling(car):
    again = _make_car()
    t = np.linspace(car.t0_s, car.t1_s, 101)
    np.testing.assert_array_equal(again.state(t).p_m, car.state(t).p_m)
    rolling = CarTrajectory.from_route(ROUTE, terrain, start_at_rest=False, t0_s=5.0)
    assert rolling.t0_s == 5.0
    assert rolling.state(5.0).speed_mps[0] == pytest.approx(CRUISE, abs=0.05)
    assert rolling.state(rolling.t1_s).speed_mps[0] < 1e-3


def test_drone_hovers_at_the_ends_and_keeps_to_its_limits(drone):
    st = drone.state(drone.times(50.0))
    assert st.speed_mps[0] < 1e-3 and st.speed_mps[-1] < 1e-3
    assert st.speed_mps.max() <= 8.0 + 0.05
    moving = st.speed_mps > 0.5
    assert lateral_accel(st)[moving].max() <= 1.1 * 2.0
    assert np.abs(st.v_mps[:, 2]).max() <= 3.0 * 1.05
    assert np.linalg.norm(st.p_m[0] - (0, 0, 50)) < 0.05
    assert np.linalg.norm(st.p_m[-1] - (0, 120, 70)) < 0.05


def test_drone_attitude_follows_thrust_and_track(drone):
    st = drone.state(drone.times(50.0))
    thrust = st.a_mps2 + np.array([0.0, 0.0, 9.80665])
    thrust /= np.linalg.norm(thrust, axis=1, keepdims=True)
    np.testing.assert_allclose(st.R_world_base[:, :, 2], thrust, atol=1e-9)
    fast = np.linalg.norm(st.v_mps[:, :2], axis=1) > 3.0
    hx = st.R_world_base[fast, :2, 0]
    d = np.arctan2(hx[:, 1], hx[:, 0]) - np.arctan2(st.v_mps[fast, 1], st.v_mps[fast, 0])
    err = np.degrees(np.abs(np.angle(np.exp(1j * d))))
    assert err.mean() < 2.0 and err.max() < 10.0
    tilt = np.degrees(np.arccos(st.R_world_base[:, 2, 2]))
    assert 3.0 < tilt.max() < 20.0  # it banks in the turns, gently


def test_drone_derivatives_are_consistent(drone):
    h = 1e-3
    t = np.linspace(drone.t0_s + 0.01, drone.t1_s - 0.01, 2001)
    s0, sp, sm = drone.state(t), drone.state(t + h), drone.state(t - h)
    np.testing.assert_allclose((sp.p_m - sm.p_m) / (2 * h), s0.v_mps, atol=1e-4)
    np.testing.assert_allclose((sp.v_mps - sm.v_mps) / (2 * h), s0.a_mps2, atol=1e-3)


def test_drone_survey_covers_the_area_at_its_altitudes():
    sv = DroneTrajectory.survey((500.0, 300.0), 300.0, 80.0, 50.0, terrain, (0.0, 0.0))
    st = sv.state(sv.times(5.0))
    agl = st.p_m[:, 2] - terrain(st.p_m[:, 0], st.p_m[:, 1])[0]
    assert agl.min() > 45.0 and agl.max() < 125.0
    assert agl.max() > 115.0 and agl.min() < 55.0  # altitude steps 50 .. 120 m
    assert np.linalg.norm(st.p_m[0, :2]) < 0.1  # transit from (0, 0)
    lines = np.abs(st.v_mps[:, 1]) < 0.1
    assert st.p_m[lines, 0].min() < 360.0 and st.p_m[lines, 0].max() > 640.0
    assert np.ptp(st.p_m[:, 1]) > 290.0
    assert st.speed_mps.max() <= 8.05
    flat = DroneTrajectory.survey((0, 0), (200, 100), 60.0, 50.0, terrain, altitude_changes=False)
    st = flat.state(flat.times(5.0))
    agl = st.p_m[:, 2] - terrain(st.p_m[:, 0], st.p_m[:, 1])[0]
    assert np.abs(agl - 60.0).max() < 1.0


@pytest.mark.parametrize(
    ("route", "kwargs"),
    [
        (np.array([[0.0, 0.0]]), {}),
        (np.array([[0.0, 0.0], [np.nan, 1.0]]), {}),
        (np.array([[0.0, 0.0], [0.0, 0.0]]), {}),
        (np.zeros((3, 3)), {}),
        (ROUTE, {"stops_s_m": [900.0]}),
        (ROUTE, {"stops_s_m": [0.0]}),
        (ROUTE, {"cruise_mps": -1.0}),
        (ROUTE, {"max_lat_accel_mps2": 0.0}),
        (ROUTE, {"stop_duration_s": float("nan")}),
        (ROUTE, {"rest_s": -1.0}),
    ],
)
def test_bad_car_inputs_raise_config_error(route, kwargs):
    with pytest.raises(ConfigError):
        CarTrajectory.from_route(route, terrain, **kwargs)


def test_bad_drone_inputs_and_times_raise_config_error(car):
    with pytest.raises(ConfigError):
        DroneTrajectory.from_waypoints(np.zeros((3, 2)))
    with pytest.raises(ConfigError):
        DroneTrajectory.from_waypoints([[0, 0, 10], [100, 0, 10]], yaw_mode="nose-left")
    with pytest.raises(ConfigError):
        DroneTrajectory.survey((0, 0), 100.0, 50.0, -5.0, terrain)
    with pytest.raises(ConfigError):
        car.state([car.t1_s + 1.0])
    with pytest.raises(ConfigError):
        car.times(10.0, car.t0_s - 5.0, car.t1_s)
