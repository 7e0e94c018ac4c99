"""A bag's fusion inputs converted to core types, optionally in a reader process.

Reading and decoding a bag (rosbags' CDR, in Python) and converting the messages
(`convert_input`) is about a third of an offline fusion replay, and none of it depends
on the fusion. On a machine with a second core a forked reader does it while the
fusion runs, and hands over converted items in batches (pickled: ~10 us an item,
against ~50 us to decode and convert an IMU message). The items and their order are
the same either way (test/test_eval_readahead.py).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoloc_ros.errors import BagError, InputRejected
from geoloc_ros.fusion.pipeline import convert_input
from geoloc_ros.io.bag import BagMessage, BagReader
from geoloc_ros.io.convert import navstate_from_odometry, stamp_of

log = logging.getLogger(__name__)

BATCH = 256  # items per hand-over: amortises the pipe, small enough to start at once


@dataclass(frozen=True)
class Item:
    """One bag message, converted. `item` is the core type for a fusion input (None if
    the converter refused it: `rejected` says why) or the ground truth's NavState;
    `msg` is the raw message, kept only for the topics asked for (visual sources)."""

    topic: str
    stamp_s: float  # header stamp, else the bag's log time
    item: Any = None
    rejected: tuple[str, str] | None = None  # (reason, message)
    msg: Any = None


def converted(
    messages: Iterable[BagMessage],
    inputs: dict[str, str],
    ground_truth_topic: str,
    raw_topics: frozenset[str] = frozenset(),
) -> Iterator[Item]:
    """Items of `messages`: `inputs` maps a topic to its fusion input name."""
    for m in messages:
        raw = m.msg if m.topic in raw_topics else None
        stamp = _stamp(m)
        if m.topic == ground_truth_topic:
            try:
                yield Item(m.topic, stamp, navstate_from_odometry(m.msg), msg=raw)
            except InputRejected as exc:
                log.debug("ground truth message skipped: %s", exc)
                yield Item(m.topic, stamp, msg=raw)
            continue
        name = inputs.get(m.topic)
        if name is None:
            yield Item(m.topic, stamp, msg=raw)
            continue
        try:
            yield Item(m.topic, stamp, convert_input(name, m.msg), msg=raw)
        except InputRejected as exc:
            yield Item(m.topic, stamp, rejected=(exc.reason, str(exc)), msg=raw)


def _stamp(m: BagMessage) -> float:
    try:
        return stamp_of(m.msg)
    except Exception:  # a message without a usable header: its log time will do
        return m.t_log_s


def reader_process_available() -> bool:
    """A forked reader pays off only with a second core to run on."""
    return "fork" in mp.get_all_start_methods() and (os.cpu_count() or 1) >= 2


def read_ahead(
    bag_path: str | Path, topics: list[str], inputs: dict[str, str], ground_truth_topic: str
) -> Iterator[Item]:
    """`converted` over the bag's `topics`, run in a forked reader process."""
    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_reader_main,
        args=(str(bag_path), topics, inputs, ground_truth_topic, send),
        name="geoloc-bag-reader",
        daemon=True,
    )
    proc.start()
    send.close()  # the child holds its own end: EOF here once it is gone
    try:
        while True:
            try:
                batch = receive.recv()
            except EOFError:
                raise BagError(f"{bag_path}: the bag reader process died") from None
            if batch is None:
                return
            if isinstance(batch, str):
                raise BagError(batch)
            yield from batch
    finally:
        receive.close()
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=5.0)


def _reader_main(path: str, topics: list[str], inputs: dict[str, str], gt: str, send) -> None:
    """The reader process: batches of items, then None; a one-line error string if the
    bag cannot be read."""
    try:
        batch: list[Item] = []
        with BagReader(path) as bag:
            for item in converted(bag.messages(topics), inputs, gt):
                batch.append(item)
                if len(batch) >= BATCH:
                    send.send(batch)
                    batch = []
        send.send(batch)
        send.send(None)
    except BrokenPipeError:  # the replay stopped early
        pass
    except Exception as exc:
        send.send(f"{path}: {type(exc).__name__}: {exc}")
    finally:
        send.close()
