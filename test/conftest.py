"""Shared fixtures: real data in ../shared/data (skipped when absent), an isolated ROS context."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sensor data not found at {SHARED_DATA} (developer checkouts only)")
    return SHARED_DATA


@pytest.fixture
def context():
    """An rclpy context on a random domain, discovery limited to this host."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy not importable (make test installs it)")
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=random.randint(50, 100))
    yield ctx
    ctx.try_shutdown()


def spin_until(executor, predicate, timeout_s: float = 10.0) -> bool:
    """Spin `executor` until `predicate()` holds or `timeout_s` passes."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
        if predicate():
            return True
    return False
