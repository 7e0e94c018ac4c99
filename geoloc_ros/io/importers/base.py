"""What every data-set importer shares: the base class, the summary, checks and the writer loop.

An importer turns one recorded data set into a DESIGN.md bag (rosbag2 mcap with /imu,
/fix, /wheel_odom, /image, /camera_info, /tf_static, /ground_truth/odom and a latched
/geoloc/source_info). The sources differ; the output contract and its checks do not,
so they live here once. Only the standard library is imported at module level: the
CLI builds its parsers from the registry and `geoloc --help` must stay instant.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from geoloc_ros.errors import GeolocError

SOURCE_INFO_TYPE = "std_msgs/msg/String"  # on topics.SOURCE_INFO, latched JSON

Event = tuple[float, int, str, Any]
"""(log time [s], tie-break order, topic, message): streams of these are merged by time."""


class SourceError(GeolocError):
    """A data set to import is missing, incomplete or malformed (the message names the file)."""


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote: messages per topic and what was left out, by reason."""

    dataset: str
    source: Path
    out: Path
    duration_s: float  # log-time span of the written bag
    counts: dict[str, int]  # topic -> messages written
    skipped: dict[str, int] = field(default_factory=dict)  # "topic: reason" -> messages
    bytes: int = 0

    def table(self) -> str:
        """A short fixed-width table for the CLI."""
        rows = [(t, str(n)) for t, n in sorted(self.counts.items())]
        rows += [(f"skipped {k}", str(n)) for k, n in sorted(self.skipped.items()) if n]
        width = max(len(r[0]) for r in rows) + 2 if rows else 10
        head = (
            f"imported {self.dataset} {self.source} -> {self.out} "
            f"({self.duration_s:.1f} s, {self.bytes / 1e6:.1f} MB)"
        )
        lines = [head, f"  {'topic':<{width}}{'messages':>10}"]
        lines += [f"  {name:<{width}}{n:>10}" for name, n in rows]
        return "\n".join(lines)


class Importer:
    """Base of the importers in the registry (`geoloc_ros.io.importers.IMPORTERS`).

    Subclasses set `name` and `describe` and implement `run`; options specific to a
    source (e.g. topic mappings) are constructor arguments.
    """

    name: ClassVar[str] = ""
    describe: ClassVar[str] = ""
    source_help: ClassVar[str] = "data-set folder"

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        """Add source-specific CLI options to the importer's argparse parser."""

    @classmethod
    def from_args(cls, args: Any) -> Importer:
        """An importer configured from the parsed CLI options."""
        return cls()

    def run(self, src: str | Path, out: str | Path, progress: bool = True) -> ImportSummary:
        """Read `src`, write the DESIGN bag `out` (mcap), return what was written."""
        raise NotImplementedError


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise SourceError(f"{what} not found: {path} is not a directory")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise SourceError(f"{what} not found: {path}")
    return path


def write_bag(
    out: Path,
    topic_types: dict[str, str],
    latched: Iterable[str],
    first: list[Event],
    streams: list[Iterator[Event]],
    progress: bool,
    total: int,
    desc: str,
) -> tuple[Counter, float, float]:
    """Write `first` (latched topics), then the time-merge of `streams`, atomically.

    Returns (messages per topic, first and last log time). `total` sizes the progress
    bar, which counts every message.
    """
    from tqdm import tqdm  # noqa: PLC0415

    from geoloc_ros.io.bag import BagWriter  # noqa: PLC0415

    latched = set(latched)
    counts: Counter = Counter()
    t_first, t_last = float("inf"), float("-inf")
    with BagWriter(out) as bag:
        for topic, msgtype in topic_types.items():
            bag.add_topic(topic, msgtype, latched=topic in latched)
        bar = tqdm(total=total, desc=desc, unit="msg", disable=not progress, leave=False)
        for t, _order, topic, msg in heapq.merge(first, *streams, key=lambda e: (e[0], e[1])):
            bag.write(topic, t, msg)
            counts[topic] += 1
            t_first, t_last = min(t_first, t), max(t_last, t)
            bar.update(1)
        bar.close()
    return counts, t_first, t_last


def string_msg(types: Any, payload: dict) -> Any:
    """std_msgs/String carrying `payload` as sorted JSON (for /geoloc/source_info)."""
    return types.get("std_msgs/msg/String")(data=json.dumps(payload, sort_keys=True))


def summary(
    dataset: str,
    src: Path,
    out: Path,
    counts: Counter,
    t_first: float,
    t_last: float,
    skipped: dict[str, int] | None = None,
) -> ImportSummary:
    return ImportSummary(
        dataset=dataset,
        source=src,
        out=out,
        duration_s=max(0.0, t_last - t_first),
        counts=dict(counts),
        skipped=dict(skipped or {}),
        bytes=out.stat().st_size,
    )
