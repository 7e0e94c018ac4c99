"""sensor_msgs/Image and CompressedImage <-> ndarray.

Decoding uses rosbags-image (works on rosbags and rclpy messages alike); where a
real ROS 2 installation provides cv_bridge, rclpy messages go through it instead.
Encoding an ndarray into an Image is a few lines that rosbags-image does not offer.
"""

from __future__ import annotations

import functools
from typing import Any

import cv2
import numpy as np

from geoloc_ros.errors import InputRejected
from geoloc_ros.io.msgtypes import MessageTypes, header_msg, msgtype_of

COLOUR_ENCODINGS = {"rgb8", "bgr8", "rgba8", "bgra8", "rgb16", "bgr16", "rgba16", "bgra16"}
_CHANNELS = {"mono8": 1, "rgb8": 3, "bgr8": 3, "mono16": 1}


@functools.cache
def _cv_bridge() -> Any | None:
    """A working cv_bridge.CvBridge (real ROS 2 installs), or None."""
    try:
        from cv_bridge import CvBridge  # noqa: PLC0415

        bridge = CvBridge()
        bridge.cv2_to_imgmsg(np.zeros((2, 2), np.uint8), "mono8")  # PyPI's 1.13 fails here
        return bridge
    except Exception:
        return None


def _decode(msg: Any, out_encoding: str) -> np.ndarray:
    from rosbags.image import ImageError, message_to_cvimage  # noqa: PLC0415

    is_rclpy = not type(msg).__module__.startswith("rosbags")
    bridge = _cv_bridge() if is_rclpy else None
    try:
        if bridge is not None:
            if msgtype_of(msg).endswith("CompressedImage"):
                return bridge.compressed_imgmsg_to_cv2(msg, out_encoding)
            return bridge.imgmsg_to_cv2(msg, out_encoding)
        return message_to_cvimage(msg, out_encoding)
    except (ImageError, ValueError, TypeError, cv2.error) as exc:
        raise InputRejected(f"cannot decode image: {exc}", "image") from None


def image_from_msg(msg: Any, want: str = "auto") -> np.ndarray:
    """uint8 ndarray of an Image or CompressedImage: HxWx3 RGB for colour, HxW for mono.

    `want` forces 'rgb8' or 'mono8'; 'auto' keeps mono images mono.
    """
    if want not in ("auto", "rgb8", "mono8"):
        raise ValueError(f"want must be auto, rgb8 or mono8, not {want!r}")
    if want == "auto":
        if msgtype_of(msg).endswith("CompressedImage"):
            probe = _decode(msg, None)  # type: ignore[arg-type]
            want = "mono8" if probe.ndim == 2 else "rgb8"
        else:
            enc = str(msg.encoding).lower()
            want = "rgb8" if (enc in COLOUR_ENCODINGS or enc.startswith("bayer")) else "mono8"
    img = _decode(msg, want)
    if img.dtype != np.uint8:
        raise InputRejected(f"decoded image has dtype {img.dtype}, expected uint8", "image")
    return np.ascontiguousarray(img)


def msg_from_image(
    img: np.ndarray, t_s: float, frame_id: str, types: MessageTypes, encoding: str | None = None
) -> Any:
    """sensor_msgs/Image of a uint8 HxW (mono8) or HxWx3 array (rgb8 unless told bgr8)."""
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise InputRejected(f"expected a uint8 HxW or HxWx3 image, got {img.dtype} {img.shape}")
    encoding = encoding or ("mono8" if img.ndim == 2 else "rgb8")
    channels = 1 if img.ndim == 2 else img.shape[2]
    if _CHANNELS.get(encoding) != channels:
        raise InputRejected(f"encoding {encoding} does not match {channels} channels", "image")
    return types.get("sensor_msgs/msg/Image")(
        header=header_msg(types, t_s, frame_id),
        height=img.shape[0],
        width=img.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=img.shape[1] * channels,
        data=img.reshape(-1),
    )


def compressed_msg_from_image(
    img_rgb: np.ndarray, t_s: float, frame_id: str, types: MessageTypes, fmt: str = "jpeg"
) -> Any:
    """sensor_msgs/CompressedImage (jpeg or png) of an RGB or mono uint8 array."""
    bgr = img_rgb if img_rgb.ndim == 2 else cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", bgr)
    if not ok:
        raise InputRejected(f"OpenCV could not encode the image as {fmt}", "image")
    return types.get("sensor_msgs/msg/CompressedImage")(
        header=header_msg(types, t_s, frame_id),
        format=fmt,
        data=buf.reshape(-1),
    )
