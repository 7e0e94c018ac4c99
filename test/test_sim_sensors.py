"""Sensor models: IMU consistent with the trajectory, GNSS/wheel errors as configured."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from geoloc_ros.errors import ConfigError
from geoloc_ros.geo.quaternion import matrix_from_xyzw
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.sim import sensors
from geoloc_ros.sim.trajectory import CarTrajectory, DroneTrajectory, Trajectory
from geoloc_ros.types import CovarianceType, GnssStatus
from test.sim_fixtures import HILLS, ROUTE

LTP = LocalTangentPlane(47.3769, 8.5417, 408.0)
G = float(sensors.normal_gravity_mps2(LTP.lat0_deg, LTP.alt0_m))


terrain = HILLS


class Circle(Trajectory):
    """Level circle at constant speed, heading along the velocity (closed form)."""

    def __init__(self, t0_s: float = 0.0, duration_s: float = 2100.0) -> None:
        super().__init__(t0_s, t0_s + duration_s)
        self.r_m, self.w_radps = 100.0, 0.1

    def _translation(self, t):
        th = self.w_radps * (t - self.t0_s)
        c, s, z = np.cos(th), np.sin(th), np.zeros_like(th)
        r, w = self.r_m, self.w_radps
        return (
            r * np.column_stack([c, s, z]),
            r * w * np.column_stack([-s, c, z]),
            -r * w**2 * np.column_stack([c, s, z]),
        )

    def _rotation(self, t):
        yaw = self.w_radps * (t - self.t0_s) + np.pi / 2
        return Rotation.from_euler("z", yaw[:, None]).as_matrix()


@pytest.fixture(scope="module")
def car() -> CarTrajectory:
    return CarTrajectory.from_route(ROUTE, terrain, stops_s_m=[150.0], stop_duration_s=3.0)


@pytest.fixture(scope="module")
def circle() -> Circle:
    return Circle()


def test_normal_gravity_matches_wgs84():
    assert sensors.normal_gravity_mps2(0.0, 0.0) == pytest.approx(9.7803253359, abs=1e-9)
    assert sensors.normal_gravity_mps2(90.0, 0.0) == pytest.approx(9.8321849378, abs=1e-9)
    assert sensors.normal_gravity_mps2(45.0, 0.0) == pytest.approx(9.806199, abs=1e-5)
    drop = sensors.normal_gravity_mps2(47.0, 0.0) - sensors.normal_gravity_mps2(47.0, 1000.0)
    assert drop == pytest.approx(3.086e-3, rel=0.01)  # free-air gradient


def strapdown(traj: Trajectory, cfg: sensors.ImuConfig, duration_s: float = 60.0):
    """Integrate the IMU alone from the true initial state; return position and attitude errors."""
    t = traj.times(cfg.rate_hz, traj.t0_s, traj.t0_s + duration_s)
    imu = sensors.simulate_imu(traj, t, cfg, np.random.default_rng(1), G)
    st = traj.state(t)
    dt = np.diff(t)[:, None]
    dR = Rotation.from_rotvec(0.5 * (imu.gyro_radps[:-1] + imu.gyro_radps[1:]) * dt).as_matrix()
    R = np.empty((t.size, 3, 3))
    R[0] = st.R_world_base[0] @ cfg.R_base_imu
    for k in range(t.size - 1):
        R[k + 1] = R[k] @ dR[k]
    a = np.einsum("nij,nj->ni", R, imu.accel_mps2) - (0.0, 0.0, G)
    v = st.v_mps[0] + np.vstack([np.zeros(3), np.cumsum(0.5 * (a[:-1] + a[1:]) * dt, axis=0)])
    dp = v[:-1] * dt + (a[:-1] / 3 + a[1:] / 6) * dt**2
    p = st.p_m[0] + np.vstack([np.zeros(3), np.cumsum(dp, axis=0)])
    R_true = st.R_world_base @ cfg.R_base_imu
    rot_err = Rotation.from_matrix(np.einsum("nji,njk->nik", R, R_true)).magnitude()
    return np.linalg.norm(p[-1] - st.p_m[-1]), rot_err.max(), np.linalg.norm(st.p_m[-1] - st.p_m[0])


def test_noise_free_car_imu_integrates_back_to_the_trajectory(car):
    cfg = sensors.ImuConfig.noise_free(mount_rpy_rad=(0.05, -0.1, np.pi / 2))
    assert car.duration_s > 60.0
    pos_err, rot_err, travelled = strapdown(car, cfg)
    assert travelled > 300.0  # terrain, the turn and the stop are inside the 60 s
    assert pos_err < 0.1
    assert rot_err < 1e-4


def test_noise_free_drone_imu_integrates_back_to_the_trajectory():
    wp = np.array([(0, 0, 50), (150, 0, 60), (150, 120, 80), (0, 120, 70)], float)
    drone = DroneTrajectory.from_waypoints(wp)
    cfg = sensors.ImuConfig.noise_free(mount_rpy_rad=(np.pi, 0.0, 0.0), rate_hz=200.0)
    pos_err, rot_err, travelled = strapdown(drone, cfg)
    assert travelled > 100.0
    assert pos_err < 0.1
    assert rot_err < 1e-4


def test_imu_errors_follow_the_configuration(car):
    cfg = sensors.ImuConfig.car()
    t = car.times(cfg.rate_hz, 0.0, 40.0)
    clean = sensors.simulate_imu(
        car, t, sensors.ImuConfig.noise_free(), np.random.default_rng(0), G
    )
    imu = sensors.simulate_imu(car, t, cfg, np.random.default_rng(7), G)
    for meas, true, scale, bias, density, rw in (
        (
            imu.gyro_radps,
            clean.gyro_radps,
            imu.gyro_scale,
            imu.gyro_bias_radps,
            cfg.gyro_noise_density_radps_rthz,
            cfg.gyro_bias_rw_radps2_rthz,
        ),
        (
            imu.accel_mps2,
            clean.accel_mps2,
            imu.accel_scale,
            imu.accel_bias_mps2,
            cfg.accel_noise_density_mps2_rthz,
            cfg.accel_bias_rw_mps3_rthz,
        ),
    ):
        white = meas - (1.0 + scale) * true - bias
        np.testing.assert_allclose(white.std(axis=0), density * np.sqrt(cfg.rate_hz), rtol=0.05)
        assert np.abs(white.mean(axis=0)).max() < 4 * density * np.sqrt(cfg.rate_hz / t.size)
        steps = np.diff(bias, axis=0)
        np.testing.assert_allclose(steps.std(axis=0), rw / np.sqrt(cfg.rate_hz), rtol=0.05)
    assert np.abs(imu.accel_scale).max() > 0  # drawn
    # scale factors and turn-on biases are drawn once per run with the configured sigma
    draws = [
        sensors.simulate_imu(car, t[:2], cfg, np.random.default_rng(seed), G) for seed in range(300)
    ]
    scales = np.array([d.gyro_scale for d in draws])
    assert scales.std() == pytest.approx(cfg.gyro_scale_ppm * 1e-6, rel=0.1)
    biases = np.array([d.accel_bias_mps2[0] for d in draws])
    assert biases.std() == pytest.approx(cfg.accel_bias_sigma_mps2, rel=0.1)


def test_imu_samples_carry_a_noisy_ahrs_orientation(car):
    cfg = sensors.ImuConfig.car(orientation_tau_s=0.05, mount_rpy_rad=(0.0, 0.0, 0.3))
    imu = sensors.simulate_imu(car, None, cfg, np.random.default_rng(3), G)
    assert imu.t_s.size == car.times(200.0).size
    samples = imu.to_samples()
    assert len(samples) == imu.t_s.size
    assert {s.frame_id for s in samples} == {"imu_link"}
    np.testing.assert_allclose(samples[0].cov_orientation_3x3, np.diag([1e-4, 1e-4, 1e-2]))
    R_est = matrix_from_xyzw(imu.q_xyzw)
    R_true = matrix_from_xyzw(imu.q_true_xyzw)
    st = car.state(imu.t_s)
    np.testing.assert_allclose(R_true, st.R_world_base @ cfg.R_base_imu, atol=1e-9)
    err = Rotation.from_matrix(R_est @ np.swapaxes(R_true, 1, 2)).as_rotvec()  # world axes
    np.testing.assert_allclose(err.std(axis=0), [0.01, 0.01, 0.1], rtol=0.15)
    clean = sensors.simulate_imu(
        car, None, sensors.ImuConfig.noise_free(), np.random.default_rng(), G
    )
    np.testing.assert_allclose(clean.q_xyzw, clean.q_true_xyzw, atol=1e-12)


def open_sky_batch(circle, **cfg):
    gnss_cfg = sensors.GnssConfig(**cfg)
    return gnss_cfg, sensors.simulate_gnss(
        circle, gnss_cfg, LTP, np.random.default_rng(11), None, 0.0, 2000.0
    )


def test_gnss_open_sky_errors_match_the_reported_covariance(circle):
    _, b = open_sky_batch(circle, tau_s=5.0)
    assert b.t_meas_s.size == 10001
    assert not b.in_burst.any()
    np.testing.assert_allclose(b.error_enu_m.std(axis=0), [0.8, 0.8, 1.5], rtol=0.15)
    cov = b.cov_enu_3x3[:, :2, :2]
    e = b.error_enu_m[:, :2]
    nees = np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)
    assert nees.mean() == pytest.approx(2.0, rel=0.2)
    # time-correlated: Gauss-Markov share 0.8 with tau 5 s -> rho(5 s) = 0.8 / e
    x = b.error_enu_m[:, 0]
    rho = np.corrcoef(x[:-25], x[25:])[0, 1]
    assert rho == pytest.approx(0.8 * np.exp(-1.0), abs=0.1)
    # the reported position really is truth + error, through WGS84 and back
    back = LTP.enu_from_geodetic(b.lat_deg, b.lon_deg, b.alt_m)
    np.testing.assert_allclose(back, b.p_antenna_enu_m + b.error_enu_m, atol=1e-6)


def test_gnss_default_model_is_consistent_in_open_sky(circle):
    _, b = open_sky_batch(circle)  # tau 30 s: looser statistics
    e = b.error_enu_m[:, :2]
    assert e.std() == pytest.approx(0.8, rel=0.3)


def test_gnss_multipath_bursts_follow_the_configured_rate(circle):
    rate, durations = 0.2, (2.0, 8.0)
    cfg = sensors.GnssConfig(burst_rate_hz=rate, burst_duration_s=durations)
    b = sensors.simulate_gnss(
        circle, cfg, LTP, np.random.default_rng(5), lambda p: np.ones(len(p)), 0.0, 2000.0
    )
    mean_d = np.mean(durations)
    expected = rate * mean_d / (1 + rate * mean_d)
    assert b.in_burst.mean() == pytest.approx(expected, abs=0.07)
    starts = np.flatnonzero(np.diff(b.in_burst.astype(int)) == 1)
    off_time = (~b.in_burst).sum() / cfg.rate_hz
    assert len(starts) == pytest.approx(rate * off_time, rel=0.25)
    err_h = np.linalg.norm(b.error_enu_m[:, :2], axis=1)
    assert np.median(err_h[b.in_burst]) >= 10.0
    assert np.median(err_h[~b.in_burst]) < 1.5
    # the receiver stays optimistic: nominal covariance times the inflation, nothing more
    cov_burst, cov_clear = b.cov_enu_3x3[b.in_burst], b.cov_enu_3x3[~b.in_burst]
    np.testing.assert_allclose(cov_burst, np.broadcast_to(1.5 * cfg.cov_enu_3x3, cov_burst.shape))
    np.testing.assert_allclose(cov_clear, np.broadcast_to(cfg.cov_enu_3x3, cov_clear.shape))
    e, cov = b.error_enu_m[b.in_burst, :2], b.cov_enu_3x3[b.in_burst, :2, :2]
    assert np.median(np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)) > 50.0


def test_gnss_bursts_only_where_exposed(circle):
    cfg = sensors.GnssConfig(burst_rate_hz=0.2)
    east_half = lambda p: (p[:, 0] > 0).astype(float)  # noqa: E731
    b = sensors.simulate_gnss(circle, cfg, LTP, np.random.default_rng(2), east_half, 0.0, 600.0)
    assert b.in_burst.any()
    starts = np.flatnonzero(np.diff(b.in_burst.astype(int)) == 1) + 1
    assert (b.exposure[starts] == 1.0).all()
    _, quiet = open_sky_batch(circle, burst_rate_hz=1.0)
    assert not quiet.in_burst.any()


@pytest.mark.parametrize("mode", ["missing", "no_fix"])
def test_gnss_outages_are_exactly_their_windows(mode):
    traj = Circle(t0_s=100.0, duration_s=120.0)
    cfg = sensors.GnssConfig(outage_mode=mode, latency_s=0.1)
    outages = [(10.0, 5.0), (40.1, 2.3)]
    b = sensors.simulate_gnss(traj, cfg, LTP, np.random.default_rng(0), outages=outages)
    fixes = b.to_fixes()
    t_rel = np.array([f.t_s for f in fixes]) - cfg.latency_s - traj.t0_s
    inside = ((t_rel >= 10.0) & (t_rel < 15.0)) | ((t_rel >= 40.1) & (t_rel < 42.4))
    no_fix = np.array([f.status == GnssStatus.NO_FIX for f in fixes])
    assert b.in_outage.sum() == 25 + 11  # 10.0 .. 14.8 and 40.2 .. 42.2
    if mode == "missing":
        assert len(fixes) == b.t_meas_s.size - b.in_outage.sum()
        assert not inside.any() and not no_fix.any()
    else:
        assert len(fixes) == b.t_meas_s.size
        np.testing.assert_array_equal(no_fix, inside)
        for i in np.flatnonzero(no_fix):
            f, prev = fixes[i], fixes[i - 1]
            assert f.covariance_type == CovarianceType.UNKNOWN and f.cov_enu_3x3 is None
            assert (f.lat_deg, f.lon_deg, f.alt_m) == (prev.lat_deg, prev.lon_deg, prev.alt_m)
            assert np.isfinite([f.lat_deg, f.lon_deg, f.alt_m]).all()
    ok = [f for f in fixes if f.has_fix]
    assert all(f.covariance_type == CovarianceType.DIAGONAL_KNOWN for f in ok)
    assert {f.frame_id for f in fixes} == {"gnss_link"}
    assert np.diff([f.t_s for f in fixes]).min() > 0


def test_gnss_reports_the_antenna_with_latency(car):
    lever = (1.0, 0.5, 1.5)
    cfg = sensors.GnssConfig(sigma_h_m=0.0, sigma_v_m=0.0, lever_arm_base_m=lever, latency_s=0.1)
    b = sensors.simulate_gnss(car, cfg, LTP, np.random.default_rng(0))
    fixes = b.to_fixes()
    t_meas = np.array([f.t_s for f in fixes]) - 0.1
    np.testing.assert_allclose(t_meas, b.t_meas_s, atol=1e-9)
    np.testing.assert_allclose(np.diff(t_meas), 0.2, atol=1e-9)
    st = car.state(t_meas)
    antenna = st.p_m + st.R_world_base @ np.array(lever)
    got = LTP.enu_from_geodetic(
        [f.lat_deg for f in fixes], [f.lon_deg for f in fixes], [f.alt_m for f in fixes]
    )
    np.testing.assert_allclose(got, antenna, atol=1e-3)
    assert np.linalg.norm(got - st.p_m, axis=1).min() > 1.8  # not base_link
    # the stamp is late: the truth at the stamp time is elsewhere while the car moves
    stamps = np.array([f.t_s for f in fixes])
    keep = (stamps <= car.t1_s) & (st.speed_mps > 5.0)
    late = car.state(stamps[keep])
    antenna_late = late.p_m + late.R_world_base @ np.array(lever)
    assert (np.linalg.norm(got[keep] - antenna_late, axis=1) > 0.4).all()


def test_wheel_speed_is_zero_when_standing_and_scaled_when_moving(car):
    cfg = sensors.WheelSpeedConfig(scale_sigma=0.01)
    w = sensors.simulate_wheel_speed(car, cfg, np.random.default_rng(4))
    assert w.t_s.size == car.times(50.0).size
    assert (w.speed_mps >= 0).all()
    (start, end), *_ = car.stop_windows_s
    standing = ((w.t_s >= start) & (w.t_s <= end)) | (w.t_s < 1.0) | (w.t_s > car.t1_s - 1.0)
    assert (w.speed_mps[standing] == 0.0).all()
    assert (w.speed_mps[w.stopped] == 0.0).all()
    assert w.stopped[standing].all()
    moving = w.true_speed_mps > 2.0
    ratio = w.speed_mps[moving].sum() / w.true_speed_mps[moving].sum()
    assert ratio == pytest.approx(1.0 + w.scale_error, abs=1e-3)
    assert abs(w.scale_error) > 1e-4
    resid = w.speed_mps[moving] - (1.0 + w.scale_error) * w.true_speed_mps[moving]
    assert resid.std() == pytest.approx(0.05, rel=0.1)
    assert w.variance_m2ps2 == pytest.approx(0.05**2)
    exact = sensors.simulate_wheel_speed(
        car, sensors.WheelSpeedConfig(noise_mps=0.0, scale_sigma=0.0), np.random.default_rng(0)
    )
    moving = ~exact.stopped
    np.testing.assert_allclose(exact.speed_mps[moving], exact.true_speed_mps[moving], atol=1e-12)
    scales = [
        sensors.simulate_wheel_speed(car, cfg, np.random.default_rng(s), 0.0, 0.1).scale_error
        for s in range(300)
    ]
    assert np.std(scales) == pytest.approx(0.01, rel=0.15)


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (sensors.ImuConfig, {"rate_hz": 50.0}),
        (sensors.ImuConfig, {"rate_hz": 1000.0}),
        (sensors.ImuConfig, {"gyro_noise_density_radps_rthz": -1e-4}),
        (sensors.ImuConfig, {"accel_bias_sigma_mps2": float("nan")}),
        (sensors.ImuConfig, {"mount_rpy_rad": (0.0, 0.0)}),
        (sensors.ImuConfig, {"orientation_tau_s": 0.0}),
        (sensors.ImuConfig.drone, {"rate_hz": 99.0}),
        (sensors.GnssConfig, {"rate_hz": 20.0}),
        (sensors.GnssConfig, {"rate_hz": 0.5}),
        (sensors.GnssConfig, {"sigma_h_m": -1.0}),
        (sensors.GnssConfig, {"burst_duration_s": (8.0, 2.0)}),
        (sensors.GnssConfig, {"burst_bias_m": (-1.0, 2.0)}),
        (sensors.GnssConfig, {"white_var_fraction": 1.5}),
        (sensors.GnssConfig, {"outage_mode": "silent"}),
        (sensors.GnssConfig, {"burst_noise_dof": 2.0}),
        (sensors.GnssConfig, {"lever_arm_base_m": (0.0, float("inf"), 1.0)}),
        (sensors.WheelSpeedConfig, {"noise_mps": -0.01}),
        (sensors.WheelSpeedConfig, {"rate_hz": 0.0}),
        (sensors.WheelSpeedConfig, {"scale_sigma": -0.1}),
    ],
)
def test_bad_sensor_config_raises_config_error(factory, kwargs):
    with pytest.raises(ConfigError):
        factory(**kwargs)


def test_bad_sensor_inputs_raise_config_error(car):
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError):  # times spaced for 100 Hz, config says 200 Hz
        sensors.simulate_imu(car, car.times(100.0, 0.0, 1.0), sensors.ImuConfig(), rng, G)
    with pytest.raises(ConfigError):
        sensors.simulate_imu(car, None, sensors.ImuConfig(), rng, 0.0)
    with pytest.raises(ConfigError):
        sensors.simulate_gnss(car, sensors.GnssConfig(), LTP, rng, lambda p: np.full(len(p), 2.0))
    with pytest.raises(ConfigError):
        sensors.simulate_gnss(car, sensors.GnssConfig(), LTP, rng, outages=[(5.0, -1.0)])
    with pytest.raises(ConfigError):
        sensors.simulate_gnss(car, sensors.GnssConfig(), LTP, rng, t_end_s=car.t1_s + 10.0)
