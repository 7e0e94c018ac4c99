"""The sensor mounts a platform config declares, as static transforms for /tf_static.

launch/geoloc.launch.py starts one tf2_ros static_transform_publisher per entry, so TF
shows the same extrinsics the nodes use (leave them off where robot_state_publisher
already publishes the robot's URDF).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoloc_ros.config import load_node_config, node_section, read_yaml


@dataclass(frozen=True)
class StaticTransform:
    parent: str
    child: str
    xyz_m: tuple[float, float, float]
    q_xyzw: tuple[float, float, float, float]

    def arguments(self) -> list[str]:
        """static_transform_publisher's named arguments (ROS 2 Humble and later)."""
        names = ["--x", "--y", "--z", "--qx", "--qy", "--qz", "--qw"]
        values = [*self.xyz_m, *self.q_xyzw]
        args = [a for n, v in zip(names, values, strict=True) for a in (n, repr(float(v)))]
        return [*args, "--frame-id", self.parent, "--child-frame-id", self.child]


def static_transforms(config: str | Path) -> list[StaticTransform]:
    """base_link -> imu_link, gnss_link (fusion_node) and camera_optical_frame
    (map_localizer_node) from a platform config; sections it lacks give none."""
    from geoloc_ros.fusion.config import FusionConfig  # noqa: PLC0415
    from geoloc_ros.geo.quaternion import xyzw_from_matrix  # noqa: PLC0415
    from geoloc_ros.neuralmap.inputs import MapLocalizerConfig  # noqa: PLC0415

    doc = read_yaml(config)
    out = []
    if node_section(doc, "fusion_node", str(config)) is not None:
        f = load_node_config(FusionConfig, config, "fusion_node")
        base = f.base_frame
        out.append(StaticTransform(base, "imu_link", (0.0, 0.0, 0.0), tuple(f.q_base_imu)))
        out.append(StaticTransform(base, "gnss_link", tuple(f.gnss_lever_arm_m),
                                   (0.0, 0.0, 0.0, 1.0)))  # fmt: skip
    if node_section(doc, "map_localizer_node", str(config)) is not None:
        m = load_node_config(MapLocalizerConfig, config, "map_localizer_node")
        T = m.T_base_cam()
        q = xyzw_from_matrix(T[:3, :3])
        xyz, q_xyzw = tuple(T[:3, 3].tolist()), tuple(np.round(q, 12).tolist())
        out.append(StaticTransform("base_link", "camera_optical_frame", xyz, q_xyzw))
    return out
