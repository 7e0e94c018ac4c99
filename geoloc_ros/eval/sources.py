"""Visual fix sources for the offline replay: what the localizer nodes do live, in the loop.

The fusion replay hands every message on a source's topics to it together with the
fusion's current state; on an image the source localizes (the map localizer with that
state as its prior, as its node does with odometry/global) and returns the fix the
fusion then consumes. So `geoloc eval --fuse map_localizer,posenet` runs the closed
loop the vehicle runs, with the nodes' own localizer objects and rules, without DDS.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.io import topics
from geoloc_ros.io.convert import camera_frame_from_msgs, gnss_from_msg, imu_from_msg, stamp_of
from geoloc_ros.io.tf import StaticTransforms
from geoloc_ros.neuralmap.inputs import (
    ImagePrior,
    MapLocalizerConfig,
    Priors,
    camera_mount,
    fix_to_publish,
    posefix_of,
)
from geoloc_ros.neuralmap.localizer import MapFix, MapLocalizer
from geoloc_ros.timeutil import FrameRate
from geoloc_ros.types import NavState, PoseFix

if TYPE_CHECKING:
    from geoloc_ros.posenet.localizer import PoseNetLocalizer


@dataclass
class SourceLog:
    fixes: list[PoseFix] = field(default_factory=list)  # what went to the fusion
    withheld: Counter = field(default_factory=Counter)  # reason -> fixes the node would withhold
    latency_ms: list[float] = field(default_factory=list)


class BagFrameLocalizer:
    """map_localizer_node's per-frame inputs from a bag (camera_info, /tf_static, gravity
    from the IMU) and one localization per image with a prior the caller supplies."""

    topics = (topics.TF_STATIC, topics.CAMERA_INFO, topics.IMU)

    def __init__(self, loc: MapLocalizer, cfg: MapLocalizerConfig) -> None:
        self.loc, self.cfg = loc, cfg
        self.gravity = cfg.gravity_filter()
        self.tf = StaticTransforms()
        self.info = None
        self.camera_mount = "config"  # where the last mount came from: "tf_static" or "config"

    def consume(self, topic: str, msg) -> None:
        """A message of one of `topics` (an IMU message may raise InputRejected)."""
        if topic == topics.TF_STATIC:
            self.tf.add_message(msg)
        elif topic == topics.CAMERA_INFO:
            self.info = msg
        elif topic == topics.IMU:
            s = imu_from_msg(msg)
            self.gravity.update(s.t_s, s.accel_mps2, s.q_xyzw, s.cov_orientation_3x3)

    def localize(
        self, msg, prior: Callable[[float], ImagePrior]
    ) -> tuple[float, MapFix, ImagePrior]:
        """(stamp, fix, prior used) of an image; `prior(t_s)` gives the ImagePrior."""
        if self.info is None:
            raise InputRejected("no camera_info yet: the camera is uncalibrated", "camera_info")
        frame = camera_frame_from_msgs(msg, self.info, want="rgb8")
        used = prior(frame.t_s)
        T_base_cam, self.camera_mount = camera_mount(self.tf, frame.frame_id, self.cfg)
        height = used.z_m + T_base_cam[2, 3] - self.cfg.ground_z_m
        fix = self.loc.localize(frame.image, frame.K_3x3, self.gravity.roll_pitch(), T_base_cam,
                                used.xy_m, used.sigma_m, used.yaw_rad, height,
                                self.gravity.tilt_sigma_rad, used.sigma_z_m)  # fmt: skip
        return frame.t_s, fix, used


class MapLocalizerSource:
    """map_localizer_node's per-frame logic: the fusion state as the prior, else (before
    the fusion starts, or when its state is stale) the latest GNSS fix, as the node falls
    back from odometry/global to fix."""

    input_name = "map_localizer/fix"
    topics = (*BagFrameLocalizer.topics, topics.IMAGE, topics.FIX)

    def __init__(self, loc: MapLocalizer, cfg: MapLocalizerConfig) -> None:
        self.cfg = cfg
        self.frames = BagFrameLocalizer(loc, cfg)
        self.log = SourceLog()
        self.rate = FrameRate(cfg.max_rate_hz)
        self.ltp = LocalTangentPlane(*loc.store.datum)
        self.priors = Priors()

    def on_message(self, topic: str, msg, state: NavState | None) -> PoseFix | None:
        """Consume one bag message; an image gives a fix (or InputRejected with a reason)."""
        if topic == topics.FIX:
            self.priors = self.priors.with_gnss(gnss_from_msg(msg), self.ltp)
            return None
        if topic != topics.IMAGE:
            self.frames.consume(topic, msg)
            return None
        if not self.rate.admit(stamp_of(msg)):
            return None
        t_s, fix, used = self.frames.localize(msg, lambda t: self._prior(state, t))
        self.log.latency_ms.append(fix.timing_ms["total"])
        fix, withheld = fix_to_publish(self.frames.loc, fix, used.xy_m, used.sigma_m, self.cfg)
        if fix is None:
            self.log.withheld[withheld] += 1
            return None
        out = posefix_of(t_s, fix, used.z_m, self.cfg.map_frame)
        self.log.fixes.append(out)
        return out

    def _prior(self, state: NavState | None, t_s: float) -> ImagePrior:
        """No state (before the fusion starts, or after it reset) leaves the GNSS prior; as
        in the node, a state it would reject leaves the earlier priors standing."""
        with contextlib.suppress(InputRejected):
            self.priors = self.priors.with_state(state, self.cfg)
        return self.priors.for_image(t_s, self.cfg)


class PoseNetSource:
    """posenet_node's per-frame logic: one MC-dropout fix per image, uncertain ones withheld."""

    input_name = "posenet/fix"
    topics = (topics.CAMERA_INFO, topics.IMAGE)

    def __init__(self, loc: PoseNetLocalizer, map_frame: str = "map",
                 max_rate_hz: float = 0.0) -> None:  # fmt: skip
        self.loc, self.map_frame = loc, map_frame
        self.info = None
        self.log = SourceLog()
        self.rate = FrameRate(max_rate_hz)

    def on_message(self, topic: str, msg, state: NavState | None) -> PoseFix | None:
        """Consume one bag message; an image gives a fix, None (withheld) or InputRejected."""
        import time  # noqa: PLC0415

        if topic == topics.CAMERA_INFO:
            self.info = msg
            return None
        if not self.rate.admit(stamp_of(msg)):
            return None
        frame = camera_frame_from_msgs(msg, self.info)
        t0 = time.perf_counter()
        res = self.loc.localize(frame.image, frame.t_s, self.map_frame)
        self.log.latency_ms.append((time.perf_counter() - t0) * 1e3)
        if res.withheld:
            self.log.withheld["uncertain"] += 1
            return None
        self.log.fixes.append(res.fix)
        return res.fix
