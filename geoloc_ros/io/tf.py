"""Static transforms from /tf_static: the sensor mounts a bag or a robot declares.

tf2_ros is not on PyPI, so this keeps the small part we need: collect the
TransformStamped of TFMessages and chain them from one frame up to an ancestor.
Dynamic /tf is not handled here (the estimators publish it, they do not read it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.geo.quaternion import normalized_xyzw
from geoloc_ros.geo.se3 import T_from_pq

MAX_DEPTH = 32  # longer chains than this are a loop


class StaticTransforms:
    """child frame -> (parent frame, T_parent_child); the latest message for a child wins."""

    def __init__(self) -> None:
        self._parent: dict[str, tuple[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self._parent)

    def add_message(self, msg: Any) -> int:
        """Add every usable transform of a tf2_msgs/TFMessage; returns how many were kept."""
        kept = 0
        for ts in getattr(msg, "transforms", []):
            try:
                self.add(ts)
                kept += 1
            except InputRejected:
                continue
        return kept

    def add(self, ts: Any) -> None:
        """One geometry_msgs/TransformStamped; rejects non-finite values and empty names."""
        parent, child = str(ts.header.frame_id).lstrip("/"), str(ts.child_frame_id).lstrip("/")
        if not parent or not child or parent == child:
            raise InputRejected(f"transform {parent!r} -> {child!r} is not usable", "tf")
        tr, r = ts.transform.translation, ts.transform.rotation
        p = np.array([tr.x, tr.y, tr.z], float)
        if not np.all(np.isfinite(p)):
            raise InputRejected(f"transform {parent} -> {child} has NaN translation", "tf")
        try:
            q = normalized_xyzw([r.x, r.y, r.z, r.w])
        except InputRejected as exc:
            raise InputRejected(f"transform {parent} -> {child}: {exc}", "tf") from None
        self._parent[child] = (parent, T_from_pq(p, q))

    def lookup(self, target: str, source: str) -> np.ndarray:
        """T_target_source, with `target` an ancestor of `source` (or the same frame)."""
        target, source = target.lstrip("/"), source.lstrip("/")
        T = np.eye(4)
        frame = source
        for _ in range(MAX_DEPTH):
            if frame == target:
                return T
            if frame not in self._parent:
                break
            frame, T_parent_frame = self._parent[frame]
            T = T_parent_frame @ T
        raise InputRejected(f"no static transform chain from {source!r} up to {target!r}", "tf")
