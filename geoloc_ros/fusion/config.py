"""Parameters of the factor-graph fusion (the fusion_node's ROS parameters, same YAML)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geoloc_ros.errors import ConfigError


@dataclass
class FusionConfig:
    datum: list[float] = field(default_factory=list)  # [lat, lon, alt]; [] = first good fix
    map_frame: str = "map"
    odom_frame: str = "odom"
    base_frame: str = "base_link"
    # node outputs (fusion_node only; the offline replay ignores them)
    publish_tf: bool = True  # map -> odom
    publish_odom_tf: bool = True  # odom -> base_link; off when e.g. wheel odometry publishes it
    path_max_poses: int = 2000  # bound on the published nav_msgs/Path
    output_rate_hz: float = 50.0  # odometry/global and TF, decimated from the IMU rate
    # outputs start once the fused yaw sigma is this small (0: from the first state): a
    # start from a loose-heading fix is not published 20 deg off until a better one comes
    output_max_yaw_sigma_rad: float = 0.0
    # smoother
    keyframe_period_s: float = 0.1
    lag_s: float = 10.0
    # variables older than lag_s leave the window together, every this often: each batch
    # re-eliminates the whole window once (the keyframe's p99), so rarer is cheaper
    marginalize_every_s: float = 3.0
    # iSAM2: check only the cliques an update touches for relinearization; measured on a
    # 120 s car drive, keyframe p95 12.5 -> 7.6 ms with the same error (benchmarks/README)
    relinearize_partial_check: bool = True
    # IMU (continuous-time densities); the IMU sits at base_link, rotated by q_base_imu
    q_base_imu: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 1.0])
    gravity_mps2: float = 9.80665
    accel_noise_density: float = 0.02
    gyro_noise_density: float = 0.002
    accel_bias_rw: float = 0.002
    gyro_bias_rw: float = 2e-5
    integration_sigma: float = 1e-4
    imu_accel_limit_mps2: float = 156.9  # sensor range (16 g): samples at it are saturated
    imu_gyro_limit_radps: float = 34.9  # 2000 deg/s
    init_accel_bias_sigma: float = 0.2
    init_gyro_bias_sigma: float = 0.01
    # GNSS
    gnss_latency_s: float = 0.0  # receiver latency: the fix describes stamp - latency
    gnss_lever_arm_m: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    gnss_sigma_h_m: float = 0.0  # > 0: replaces covariances that are not DIAGONAL/KNOWN
    gnss_sigma_v_m: float = 0.0
    gnss_min_sigma_m: float = 0.3  # floor on the reported sigma
    # slowly varying GNSS error (satellite geometry, atmosphere) as a first-order
    # Gauss-Markov state; its share is taken out of the reported variance.
    # 0 = fixes are white noise: faster, but the output covariance is then
    # optimistic (position NEES inside its 95 % bounds 24 % of the time, docs/fusion.md)
    gnss_bias_sigma_m: float = 0.8  # horizontal; vertical twice this
    gnss_bias_tau_s: float = 30.0
    gnss_gate_chi2: float = 16.27  # Mahalanobis gate on 3 dof (99.9 %); 0 = off
    gnss_gate_reset_s: float = 10.0  # every fix gated this long: re-initialise from GNSS
    gnss_readmit_chi2: float = 7.81  # after a gated fix, the gate for the next ones (95 %) ...
    gnss_readmit_fixes: int = 3  # ... until this many in a row have passed it; 0 = off
    # ... and reach past the last refused fix by this share of the time fixes were
    # refused: after a long refusal the state's covariance has grown to a burst's offset
    # and a short run proves nothing
    gnss_readmit_span_fraction: float = 0.0  # off: see docs/fusion.md rule 2
    gnss_robust: str = "huber"  # huber | cauchy | none
    gnss_robust_k: float = 1.5
    # wheel speed and the non-holonomic constraint (cars)
    use_wheel_speed: bool = True
    wheel_sigma_mps: float = 0.3  # floor on the reported wheel-speed sigma (CAN speed jitter, slip)
    wheel_scale_sigma: float = 0.03  # prior on the estimated wheel-speed scale (tyre radius)
    wheel_scale_rw: float = 1e-4  # its random walk [1/sqrt(s)]
    wheel_wait_s: float = 0.5  # a keyframe waits this long for a late wheel-speed sample
    use_nhc: bool = True  # non-holonomic constraint (cars); off for drones
    nhc_sigma_mps: float = 0.1  # lateral and vertical body velocity
    # IMU orientation (AHRS output, e.g. a magnetometer-aided yaw): off by default,
    # because a magnetic heading disagrees with the map's true north by the declination
    use_imu_orientation: bool = False
    imu_orientation_min_sigma_rad: float = 0.02  # floor on the reported orientation sigma
    # visual fixes
    # Mahalanobis gate on the fix's dof (16.3: 99.9 % at 3 dof); 0 = off. Ungated, one
    # gross outlier with a small sigma moves the state until the GNSS gate gives up
    visual_gate_chi2: float = 16.3
    # while the vehicle stands, each visual source counts once per this period: the same
    # view repeats the same error; 0 = take every fix
    visual_standstill_period_s: float = 2.0
    # correlation time of each localizer's error (exponential): a fix dt after the last
    # one its source gave has its covariance scaled by (1 + a) / (1 - a), a = exp(-dt/tau),
    # so a fast stream of correlated fixes counts as the evidence it holds; 0 = independent
    map_localizer_error_tau_s: float = 0.0
    posenet_error_tau_s: float = 0.0
    # false: PoseNet's height is left free (its x, y and attitude are used). A regressed
    # height leans to the area's mean, so on a hilly road its error follows the terrain
    # for tens of seconds: far longer than posenet_error_tau_s, so it cannot be averaged
    posenet_use_z: bool = True
    # initialisation: heading from motion (GNSS), from a visual fix, or - with
    # start_at_origin - at the map origin with the IMU's orientation (dead reckoning)
    start_at_origin: bool = False
    init_window_s: float = 3.0  # fixes fitted for the heading; longer for slow robots
    init_min_speed_mps: float = 2.0
    init_min_distance_m: float = 4.0
    init_yaw_sigma_rad: float = 0.2
    init_max_turn_rad: float = 0.17  # the gyro saw a larger heading change in the window: wait
    init_tilt_sigma_rad: float = 0.05

    def __post_init__(self) -> None:
        if self.datum and len(self.datum) != 3:
            raise ConfigError(f"datum must be [lat_deg, lon_deg, alt_m] or [], got {self.datum}")
        if len(self.q_base_imu) != 4 or abs(np.linalg.norm(self.q_base_imu) - 1.0) > 1e-6:
            raise ConfigError(f"q_base_imu must be a unit quaternion [x y z w]: {self.q_base_imu}")
        if len(self.gnss_lever_arm_m) != 3:
            raise ConfigError(f"gnss_lever_arm_m must have 3 values: {self.gnss_lever_arm_m}")
        if not 0.01 <= self.keyframe_period_s <= 1.0 or self.lag_s < 5 * self.keyframe_period_s:
            raise ConfigError("keyframe_period_s must be 0.01-1 s and lag_s >= 5 keyframes")
        if self.gnss_robust not in ("huber", "cauchy", "none"):
            raise ConfigError(f"gnss_robust must be huber, cauchy or none: {self.gnss_robust!r}")
        positive = [
            "gravity_mps2",
            "accel_noise_density",
            "gyro_noise_density",
            "accel_bias_rw",
            "gyro_bias_rw",
            "integration_sigma",
            "wheel_sigma_mps",
            "nhc_sigma_mps",
            "gnss_min_sigma_m",
            "init_window_s",
            "init_max_turn_rad",
            "imu_orientation_min_sigma_rad",
            "imu_accel_limit_mps2",
            "imu_gyro_limit_radps",
            "output_rate_hz",
            "marginalize_every_s",
        ]
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not self.output_max_yaw_sigma_rad >= 0:
            raise ConfigError(
                f"output_max_yaw_sigma_rad must be >= 0, got {self.output_max_yaw_sigma_rad}"
            )
        if self.path_max_poses < 1:
            raise ConfigError(f"path_max_poses must be at least 1, got {self.path_max_poses}")
        if self.gnss_bias_sigma_m < 0 or self.gnss_bias_tau_s <= 0:
            raise ConfigError("gnss_bias_sigma_m must be >= 0 and gnss_bias_tau_s > 0")
        if self.gnss_readmit_chi2 <= 0 or self.gnss_readmit_fixes < 0:
            raise ConfigError("gnss_readmit_chi2 must be positive and gnss_readmit_fixes >= 0")
        if not 0.0 <= self.gnss_readmit_span_fraction <= 1.0:
            raise ConfigError("gnss_readmit_span_fraction must be in [0, 1]")
        if not (self.map_localizer_error_tau_s >= 0 and self.posenet_error_tau_s >= 0):
            raise ConfigError("map_localizer_error_tau_s and posenet_error_tau_s must be >= 0")
        if not self.visual_standstill_period_s >= 0:
            raise ConfigError(
                f"visual_standstill_period_s must be >= 0, got {self.visual_standstill_period_s}"
            )
        if not 0 <= self.wheel_wait_s <= self.lag_s / 2:
            raise ConfigError(f"wheel_wait_s must be in [0, lag_s / 2], got {self.wheel_wait_s}")
        if self.gnss_latency_s < 0 or self.gnss_latency_s > 2.0:
            raise ConfigError(f"gnss_latency_s must be in [0, 2], got {self.gnss_latency_s}")
