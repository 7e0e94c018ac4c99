"""MC-dropout PoseNet: model, sampling, training, calibration (issue: PoseNet)."""
