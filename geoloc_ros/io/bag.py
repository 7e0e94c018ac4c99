"""Read any bag (rosbag2 mcap/sqlite3 directory or file, ROS 1 .bag) and write mcap.

Built on `rosbags`. Reading skips topics whose message types cannot be resolved
(one warning lists them). Writing is atomic: the output appears complete or not
at all, so a crash never leaves a half-written bag behind.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoloc_ros.errors import BagError, ConfigError
from geoloc_ros.io.msgtypes import default_typestore

log = logging.getLogger(__name__)


def check_output(out: Path) -> None:
    """Refuse before any work if `out` exists or its folder cannot be written.

    Probes with a real temporary file: os.access says yes to root even where writes
    fail (/proc), and a parent that is a file is caught here, not after the work.
    """
    if out.exists():
        raise ConfigError(f"{out} exists already; remove it or choose another --out")
    probe = out.parent if str(out.parent) else Path()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"cannot write {out}: {probe} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {probe} is not writable ({exc.strerror})") from None


@dataclass(frozen=True)
class BagMessage:
    """One deserialised message; `t_log_s` is the bag's receive time, not the header stamp."""

    topic: str
    msgtype: str
    t_log_s: float
    msg: Any


@dataclass(frozen=True)
class TopicInfo:
    topic: str
    msgtype: str
    count: int


def _rosbags_errors() -> tuple[type[BaseException], ...]:
    from rosbags.highlevel import AnyReaderError  # noqa: PLC0415
    from rosbags.rosbag1 import ReaderError as Reader1Error  # noqa: PLC0415
    from rosbags.rosbag2 import ReaderError as Reader2Error  # noqa: PLC0415

    return (AnyReaderError, Reader1Error, Reader2Error)


class BagReader:
    """Context manager over one bag. Use `messages()` to iterate in log-time order."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: Any = None
        self.skipped: dict[str, str] = {}  # topic -> msgtype that could not be resolved
        self.start_s = self.end_s = 0.0  # log time of the first and last message

    def __enter__(self) -> BagReader:
        from rosbags.highlevel import AnyReader  # noqa: PLC0415

        if not self.path.exists():
            raise BagError(f"bag not found: {self.path}")
        errors = _rosbags_errors()
        try:
            self._reader = AnyReader([self.path], default_typestore=default_typestore())
            self._reader.open()
        except errors as exc:
            raise BagError(f"cannot read bag {self.path}: {exc}") from None
        except (OSError, ValueError, KeyError) as exc:
            raise BagError(f"cannot read bag {self.path} (corrupt?): {exc}") from None
        self._resolve_types()
        self.start_s = self._reader.start_time * 1e-9 if self._reader.message_count else 0.0
        self.end_s = self._reader.end_time * 1e-9 if self._reader.message_count else 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _resolve_types(self) -> None:
        store = self._reader.typestore
        missing = {c.msgtype for c in self._reader.connections} - set(store.fielddefs)
        if missing:  # bag mixes embedded and absent definitions: borrow the defaults
            extra = {
                k: v for k, v in default_typestore().fielddefs.items() if k not in store.fielddefs
            }
            try:
                store.register(extra)
            except Exception as exc:  # conflicting definitions: keep what the bag says
                log.debug("could not register default types: %s", exc)
        for c in self._reader.connections:
            if c.msgtype not in store.fielddefs:
                self.skipped[c.topic] = c.msgtype
        if self.skipped:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(self.skipped.items()))
            log.warning("%s: skipping topics with unknown message types: %s", self.path, listing)

    @property
    def typestore(self) -> Any:
        return self._reader.typestore

    def _connections(self, topics: Iterable[str] | None) -> list[Any]:
        wanted = set(topics) if topics is not None else None
        return [
            c
            for c in self._reader.connections
            if c.topic not in self.skipped and (wanted is None or c.topic in wanted)
        ]

    def topics(self) -> list[TopicInfo]:
        """Readable topics with their types and message counts."""
        counts: dict[tuple[str, str], int] = {}
        for c in self._connections(None):
            key = (c.topic, c.msgtype)
            counts[key] = counts.get(key, 0) + c.msgcount
        return [TopicInfo(t, m, n) for (t, m), n in sorted(counts.items())]

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Deserialised messages of `topics` (all readable ones if None) in log-time order."""
        conns = self._connections(topics)
        if not conns:
            return
        errors = _rosbags_errors()
        try:
            for conn, t_ns, raw in self._reader.messages(connections=conns):
                msg = self._reader.deserialize(raw, conn.msgtype)
                yield BagMessage(conn.topic, conn.msgtype, t_ns * 1e-9, msg)
        except errors as exc:
            raise BagError(f"{self.path}: {exc}") from None


def _qos_profiles(latched: bool) -> list[Any]:
    from rosbags.rosbag2.metadata import (  # noqa: PLC0415
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(sec=0, nsec=0)
    return [
        Qos(
            history=QosHistory.KEEP_LAST,
            depth=1 if latched else 100,
            reliability=QosReliability.RELIABLE,
            durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
            deadline=zero,
            lifespan=zero,
            liveliness=QosLiveliness.AUTOMATIC,
            liveliness_lease_duration=zero,
            avoid_ros_namespace_conventions=False,
        )
    ]


class BagWriter:
    """Writes a rosbag2 bag atomically.

    `path` ending in `.mcap`: one self-contained mcap file (plays with `ros2 bag play`
    and opens in Foxglove). Otherwise: a rosbag2 directory with metadata.yaml.
    Refuses to overwrite unless `overwrite=True`.
    """

    def __init__(self, path: str | Path, typestore: Any | None = None, overwrite: bool = False):
        self.path = Path(path)
        self.typestore = typestore if typestore is not None else default_typestore()
        self.overwrite = overwrite
        self._tmpdir: Path | None = None
        self._writer: Any = None
        self._conns: dict[str, Any] = {}

    def __enter__(self) -> BagWriter:
        from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: PLC0415

        if self.path.exists() and not self.overwrite:
            raise BagError(f"{self.path} exists already; remove it or choose another --out")
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=parent))
        except OSError as exc:
            raise BagError(f"cannot write {self.path}: {exc.strerror}") from None
        stem = self.path.name.removesuffix(".mcap")
        self._writer = Writer(self._tmpdir / stem, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        return self

    def add_topic(self, topic: str, msgtype: str, latched: bool = False) -> None:
        """Register a topic; `latched` records transient-local QoS (e.g. /tf_static)."""
        if topic in self._conns:
            return
        self._conns[topic] = self._writer.add_connection(
            topic,
            msgtype,
            typestore=self.typestore,
            offered_qos_profiles=_qos_profiles(latched),
        )

    def write(self, topic: str, t_log_s: float, msg: Any) -> None:
        """Serialise and write `msg` on a registered topic at log time `t_log_s`."""
        conn = self._conns.get(topic)
        if conn is None:
            raise BagError(f"topic {topic} was not added to {self.path}")
        raw = self.typestore.serialize_cdr(msg, conn.msgtype)
        self._writer.write(conn, round(t_log_s * 1e9), raw)

    def write_raw(self, topic: str, t_log_s: float, raw: bytes) -> None:
        """Write an already CDR-serialised message (as received raw from DDS)."""
        conn = self._conns.get(topic)
        if conn is None:
            raise BagError(f"topic {topic} was not added to {self.path}")
        self._writer.write(conn, round(t_log_s * 1e9), raw)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        tmp = self._tmpdir
        try:
            self._writer.close()
            if exc_type is None and tmp is not None:
                self._commit(tmp)
        finally:
            if tmp is not None and tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _commit(self, tmp: Path) -> None:
        stem = self.path.name.removesuffix(".mcap")
        bagdir = tmp / stem
        if self.overwrite and self.path.exists():
            if self.path.is_dir():
                shutil.rmtree(self.path)
            else:
                self.path.unlink()
        if self.path.suffix == ".mcap":
            (mcap,) = bagdir.glob("*.mcap")
            mcap.replace(self.path)
        else:
            bagdir.replace(self.path)


def convert_bag(src: str | Path, dst: str | Path, topics: Sequence[str] = ()) -> list[TopicInfo]:
    """Copy every readable topic of any bag (ROS 1 included) into an mcap `dst`.

    ROS 1 messages are converted to their ROS 2 definitions by rosbags' converter
    where they differ (e.g. Header.seq is dropped).
    """
    from rosbags.convert import ConverterError, convert  # noqa: PLC0415

    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise BagError(f"bag not found: {src}")
    with BagReader(src) as reader:
        keep = [t.topic for t in reader.topics() if not topics or t.topic in topics]
    if dst.exists():
        raise BagError(f"{dst} exists already; remove it or choose another --out")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        out_dir = tmp / "bag"
        try:
            convert(
                srcs=[src],
                dst=out_dir,
                dst_storage="mcap",
                dst_version=9,
                compress=None,
                compress_mode="file",
                default_typestore=default_typestore(),
                typestore=default_typestore(),
                exclude_topics=[],
                include_topics=keep,
                exclude_msgtypes=[],
                include_msgtypes=[],
            )
        except ConverterError as exc:
            raise BagError(f"cannot convert {src}: {exc}") from None
        if dst.suffix == ".mcap":
            (mcap,) = out_dir.glob("*.mcap")
            mcap.replace(dst)
        else:
            out_dir.replace(dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with BagReader(dst) as reader:
        return reader.topics()
