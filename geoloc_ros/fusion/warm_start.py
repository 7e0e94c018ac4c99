"""What a GNSS divergence reset keeps: attitude and IMU biases, not position or velocity.

Rule 4 of gnss_admission (every fix refused for `gnss_gate_reset_s`) says the
position is wrong. The attitude and the biases the IMU chain estimated before are
not what the fixes contradict, and starting them again from the accelerometer and
zero (as a cold start must) leaves a drone's next minutes of dead reckoning to a
tilt and a bias that have had seconds to converge. So the restart takes them over,
propagated by the gyro to the new start, with their marginal sigmas widened.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.spatial.transform import Rotation

WARM_START_MAX_AGE_S = 30.0  # older than this, the carried attitude is a guess: start cold
MAX_GYRO_GAP_S = 0.1  # a longer gap in the IMU stream breaks the propagation
WARM_START_SIGMA_GAIN = 2.0  # the state that diverged was overconfident somewhere
WARM_START_MIN_TILT_SIGMA_RAD = 0.005
WARM_START_MIN_YAW_SIGMA_RAD = 0.02


@dataclass(frozen=True)
class CarriedAttitude:
    """The last keyframe's attitude and IMU biases, with 1-sigma of each (body frame)."""

    t_s: float  # when R_map_base holds
    R_map_base: np.ndarray  # (3, 3)
    sigma_rot_rad: np.ndarray  # (3,) about base_link's x, y, z
    bias_acc_mps2: np.ndarray  # (3,)
    bias_gyr_radps: np.ndarray  # (3,)
    sigma_bias: np.ndarray  # (6,) accelerometer then gyro, as GTSAM's ConstantBias
    t0_s: float  # when it was carried over (its age bounds the propagation)

    def advanced(self, t_s: float, w_radps: np.ndarray) -> CarriedAttitude | None:
        """Rotated by one gyro sample (the rate over (self.t_s, t_s]); None after a gap
        or when too old (no honest propagation: the restart is then a cold one)."""
        dt = t_s - self.t_s
        if dt <= 0.0:
            return self
        if dt > MAX_GYRO_GAP_S or t_s - self.t0_s > WARM_START_MAX_AGE_S:
            return None
        R = self.R_map_base @ Rotation.from_rotvec((w_radps - self.bias_gyr_radps) * dt).as_matrix()
        return replace(self, t_s=t_s, R_map_base=R)

    def at(self, t_s: float, gyro: list[tuple[float, np.ndarray]]) -> np.ndarray | None:
        """R_map_base at t_s, advanced by the gyro samples (t, w) up to t_s; None as above."""
        c: CarriedAttitude | None = self
        for t, w in gyro:
            if t > t_s:
                break
            c = c.advanced(t, w)
            if c is None:
                return None
        return c.R_map_base if t_s - c.t_s <= MAX_GYRO_GAP_S else None

    def rotation_sigmas(self) -> np.ndarray:
        """Rotation sigmas (3,) for the restart's prior: widened, floored."""
        floor = [WARM_START_MIN_TILT_SIGMA_RAD] * 2 + [WARM_START_MIN_YAW_SIGMA_RAD]
        return np.maximum(self.sigma_rot_rad * WARM_START_SIGMA_GAIN, floor)

    def bias_sigmas(self, cold_6: np.ndarray) -> np.ndarray:
        """Bias sigmas (6,): widened, never tighter than 1 % nor looser than a cold start's."""
        return np.clip(self.sigma_bias * WARM_START_SIGMA_GAIN, 0.01 * cold_6, cold_6)
