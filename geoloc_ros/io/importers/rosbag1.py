"""A recorded ROS bag (ROS 1 .bag, or any bag BagReader opens) -> DESIGN bag.

Topics are mapped to the DESIGN names by message type: the one sensor_msgs/Imu topic
becomes /imu, NavSatFix /fix, Odometry /wheel_odom (or /ground_truth/odom when its name
says ground truth), Image or CompressedImage /image, CameraInfo /camera_info; /tf and
/tf_static keep their names. A type with several candidate topics is an error that
names them, resolved with explicit `SRC=DST` mappings (`SRC=` drops a topic). Topics
with no role are dropped and listed. Frame ids, stamps and log times are kept.

Messages are deserialised with the source bag's own definitions and migrated field by
field to the ROS 2 definitions (rosbags' converter: ROS 1 Header.seq is dropped,
tf/tfMessage becomes tf2_msgs/TFMessage). Imu, NavSatFix and Odometry messages are
first read through io.convert, which is what every consumer of the bag does; a message
it rejects (NaN, impossible covariance, unknown status...) is counted per topic and
reason in the summary and left out, so the output only holds messages the fusion accepts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.io import topics
from geoloc_ros.io.bag import check_output
from geoloc_ros.io.importers.base import (
    SOURCE_INFO_TYPE,
    Event,
    Importer,
    ImportSummary,
    SourceError,
    string_msg,
    summary,
    write_bag,
)

ROLES = {
    "sensor_msgs/msg/Imu": topics.IMU,
    "sensor_msgs/msg/NavSatFix": topics.FIX,
    "nav_msgs/msg/Odometry": topics.WHEEL_ODOM,
    "sensor_msgs/msg/Image": topics.IMAGE,
    "sensor_msgs/msg/CompressedImage": topics.IMAGE,
    "sensor_msgs/msg/CameraInfo": topics.CAMERA_INFO,
}
ALIASES = {"tf/msg/tfMessage": "tf2_msgs/msg/TFMessage"}  # ROS 1 name -> ROS 2 type
TF_TYPES = {"tf2_msgs/msg/TFMessage", "tf/msg/tfMessage"}
GROUND_TRUTH_NAME = re.compile(r"ground[_-]?truth|(^|[/_])gt($|[/_])", re.IGNORECASE)


def parse_topic_maps(items: list[str] | None) -> dict[str, str]:
    """--topic SRC=DST strings -> {SRC: DST}; DST empty means drop SRC."""
    out: dict[str, str] = {}
    for item in items or ():
        src, sep, dst = item.partition("=")
        if not sep or not src.startswith("/") or (dst and not dst.startswith("/")):
            raise ConfigError(f"--topic wants /SRC=/DST (or /SRC= to drop), got {item!r}")
        if src in out:
            raise ConfigError(f"--topic maps {src} twice")
        out[src] = dst
    return out


def _auto_role(topic: str, msgtype: str) -> str | None:
    if msgtype in TF_TYPES:
        return topic if topic in (topics.TF_STATIC, "/tf") else None
    role = ROLES.get(msgtype)
    if role == topics.WHEEL_ODOM and GROUND_TRUTH_NAME.search(topic):
        return topics.GROUND_TRUTH
    return role


def plan_mapping(
    types: Mapping[str, str], explicit: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """({source topic: DESIGN topic}, {dropped source topic: why}) for topics -> types."""
    unknown = sorted(set(explicit) - set(types))
    if unknown:
        raise ConfigError(
            f"--topic names topics not in the bag: {', '.join(unknown)} "
            f"(it has {', '.join(sorted(types))})"
        )
    mapping = {s: d for s, d in explicit.items() if d}
    dropped = {s: "dropped by --topic" for s, d in explicit.items() if not d}
    candidates: dict[str, list[str]] = {}
    for topic, msgtype in sorted(types.items()):
        if topic in explicit:
            continue
        role = _auto_role(topic, msgtype)
        if role is None:
            dropped[topic] = f"no DESIGN role for {msgtype}"
        elif role in mapping.values():
            dropped[topic] = f"{role} is taken by a --topic mapping"
        else:
            candidates.setdefault(role, []).append(topic)
    for role, srcs in candidates.items():
        raw = [s for s in srcs if types[s] != "sensor_msgs/msg/CompressedImage"]
        if role == topics.IMAGE and len(raw) == 1 and len(srcs) > 1:
            for s in srcs:  # image transport: /x/compressed next to /x, keep the raw one
                if s != raw[0]:
                    dropped[s] = f"compressed copy; {raw[0]} is used"
            srcs = raw
        if len(srcs) > 1:
            flags = " ".join(f"--topic {s}={role}" for s in srcs[:1])
            raise ConfigError(
                f"ambiguous: topics {', '.join(srcs)} all fit {role} ({types[srcs[0]]}); "
                f"choose with --topic SRC=DST (repeatable, SRC= drops), e.g. {flags}"
            )
        mapping[srcs[0]] = role
    targets = Counter(mapping.values())
    clash = sorted(d for d, n in targets.items() if n > 1)
    if clash:
        raise ConfigError(f"several topics map to {', '.join(clash)}; give one source each")
    return mapping, dropped


def _validators() -> dict[str, Any]:
    """msgtype -> the io.convert reader that every consumer of the bag applies."""
    from geoloc_ros.io import convert  # noqa: PLC0415

    return {
        "sensor_msgs/msg/Imu": convert.imu_from_msg,
        "sensor_msgs/msg/NavSatFix": convert.gnss_from_msg,
        "nav_msgs/msg/Odometry": convert.navstate_from_odometry,
    }


class Rosbag1Importer(Importer):
    name = "rosbag1"
    describe = "ROS 1 bag (or any rosbag2) -> DESIGN bag, topics mapped by message type"

    source_help = "bag file (ROS 1 .bag, .mcap, .db3) or rosbag2 folder"

    def __init__(self, topic_map: Mapping[str, str] | None = None) -> None:
        self.topic_map = dict(topic_map or {})

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument(
            "--topic",
            action="append",
            metavar="SRC=DST",
            help="map a source topic to a DESIGN topic, e.g. /imu/data=/imu (repeatable; "
            "SRC= drops it); needed where several topics have one type",
        )

    @classmethod
    def from_args(cls, args: Any) -> Rosbag1Importer:
        return cls(parse_topic_maps(args.topic))

    def run(self, src: str | Path, out: str | Path, progress: bool = True) -> ImportSummary:
        from geoloc_ros.io.bag import BagReader  # noqa: PLC0415
        from geoloc_ros.io.msgtypes import RosbagsTypes, default_typestore  # noqa: PLC0415

        src, out = Path(src), Path(out)
        check_output(out)
        dst_store = default_typestore()
        skipped: Counter = Counter()
        with BagReader(src) as reader:
            infos = reader.topics()
            types = {t.topic: t.msgtype for t in infos}
            if len(types) != len(infos):
                raise SourceError(f"{src}: a topic carries several message types")
            mapping, dropped = plan_mapping(types, self.topic_map)
            for topic, msgtype in reader.skipped.items():
                dropped[topic] = f"unknown message type {msgtype}"
            out_types = {}
            for s, d in mapping.items():
                out_types[d] = ALIASES.get(types[s], types[s])
                if out_types[d] not in dst_store.fielddefs:
                    raise SourceError(f"{s}: {types[s]} has no ROS 2 definition to write")
            info = {
                "dataset": self.name,
                "source": str(src.resolve()),
                "mapping": mapping,
                "dropped": dropped,
                "types": {s: types[s] for s in mapping},
                "frame_ids": "kept as in the source; stamps and log times kept",
                "validation": "Imu, NavSatFix, Odometry read through io.convert; "
                "rejected messages left out and counted",
            }
            rtypes = RosbagsTypes(dst_store)
            first = [(reader.start_s, -1, topics.SOURCE_INFO, string_msg(rtypes, info))]
            out_types[topics.SOURCE_INFO] = SOURCE_INFO_TYPE
            stream = _events(reader, mapping, out_types, skipped)
            total = sum(t.count for t in infos if t.topic in mapping)
            latched = (topics.TF_STATIC, topics.SOURCE_INFO)
            counts, t_first, t_last = write_bag(
                out, out_types, latched, first, [stream], progress, total, self.name
            )
        return summary(self.name, src, out, counts, t_first, t_last, dict(skipped))


def _events(reader: Any, mapping: dict, out_types: dict, skipped: Counter) -> Iterator[Event]:
    from rosbags.convert.converter import migrate_message  # noqa: PLC0415

    from geoloc_ros.io.msgtypes import default_typestore  # noqa: PLC0415

    src_store, dst_store = reader.typestore, default_typestore()
    cache: dict[str, object] = {}
    validators = _validators()
    for m in reader.messages(list(mapping)):
        dst = mapping[m.topic]
        check = validators.get(m.msgtype)
        try:
            if check is not None:
                check(m.msg)
            msg = migrate_message(src_store, dst_store, m.msgtype, out_types[dst], cache, m.msg)
        except InputRejected as exc:
            skipped[f"{m.topic}: {exc.reason}"] += 1
            continue
        except (ValueError, TypeError, AttributeError, KeyError):
            skipped[f"{m.topic}: conversion failed"] += 1
            continue
        yield m.t_log_s, 0, dst, msg
