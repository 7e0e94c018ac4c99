"""Fusion of GNSS, IMU, wheel speed and visual fixes (GTSAM factor graph)."""
