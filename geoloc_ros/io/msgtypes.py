"""Where message classes come from: a rosbags typestore (offline) or rclpy packages (nodes).

Conversion functions build messages through a `MessageTypes` so that the same code
writes bags and publishes over DDS. Both kinds of class accept every field as a
keyword argument, which is the only construction style used here.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any, Protocol

from geoloc_ros.timeutil import s_to_stamp


class MessageTypes(Protocol):
    """Looks up a message class by its ROS 2 name, e.g. 'sensor_msgs/msg/Imu'."""

    def get(self, msgtype: str) -> type: ...


class RosbagsTypes:
    """Message classes of a rosbags typestore (default: ROS 2 Kilted)."""

    def __init__(self, typestore: Any | None = None) -> None:
        self.typestore = typestore if typestore is not None else default_typestore()

    def get(self, msgtype: str) -> type:
        return self.typestore.types[msgtype]


class RclpyTypes:
    """Message classes of the installed ROS 2 Python message packages."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}  # a node builds messages at IMU rate

    def get(self, msgtype: str) -> type:
        cls = self._classes.get(msgtype)
        if cls is None:
            pkg, kind, name = msgtype.split("/")
            cls = self._classes[msgtype] = getattr(importlib.import_module(f"{pkg}.{kind}"), name)
        return cls


@cache
def default_typestore() -> Any:
    """The rosbags typestore for the ROS 2 distribution the project targets."""
    from rosbags.typesys import Stores, get_typestore  # noqa: PLC0415

    return get_typestore(Stores.ROS2_KILTED)


def header_msg(types: MessageTypes, t_s: float, frame_id: str) -> Any:
    """std_msgs/Header with the stamp of float seconds `t_s`."""
    sec, nanosec = s_to_stamp(t_s)
    Time = types.get("builtin_interfaces/msg/Time")
    return types.get("std_msgs/msg/Header")(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def msgtype_of(msg: Any) -> str:
    """ROS 2 type name of a rosbags or rclpy message instance."""
    name = getattr(msg, "__msgtype__", None)
    if name:
        return name
    module = type(msg).__module__.split(".")  # e.g. sensor_msgs.msg._imu
    return f"{module[0]}/{module[1]}/{type(msg).__name__}"
