"""The `geoloc` command. Parsers import nothing heavy: `--help` stays instant.

Known errors (GeolocError and missing files) end as one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("geoloc_ros.cli")


def _cmd_bag_info(args: argparse.Namespace) -> int:
    from geoloc_ros.io.bag import BagReader  # noqa: PLC0415

    with BagReader(args.bag) as bag:
        topics = bag.topics()
        print(
            f"{args.bag}: {bag.end_s - bag.start_s:.2f} s, {sum(t.count for t in topics)} messages"
        )
        width = max((len(t.topic) for t in topics), default=5) + 2
        for t in topics:
            print(f"  {t.topic:<{width}}{t.msgtype:<42}{t.count:>8}")
        for topic, msgtype in sorted(bag.skipped.items()):
            print(f"  {topic:<{width}}{msgtype:<42}{'skipped (unknown type)':>8}")
    return 0


def _cmd_bag_convert(args: argparse.Namespace) -> int:
    from geoloc_ros.io.bag import convert_bag  # noqa: PLC0415

    topics = convert_bag(args.bag, args.out, topics=args.topics or ())
    print(f"wrote {args.out}: {len(topics)} topics, {sum(t.count for t in topics)} messages")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    try:
        from geoloc_ros.nodes.bag_player import main_replay  # noqa: PLC0415
    except ImportError as exc:
        from geoloc_ros.errors import GeolocError  # noqa: PLC0415

        raise GeolocError(f"geoloc replay needs rclpy (make test installs it): {exc}") from None
    return main_replay(args.bag, args.rate, args.loop, args.topics or (), args.clock_hz,
                       not args.quiet)  # fmt: skip


def _prepare_out_dir(path: Path) -> None:
    """Create the output folder up front, so an unwritable --out fails before any work."""
    from geoloc_ros.errors import GeolocError  # noqa: PLC0415

    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise GeolocError(f"cannot write to --out {path}: {exc.strerror}") from None


class _UsageError(Exception):
    pass


def _usage(message: str) -> _UsageError:
    return _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geoloc",
        description="Geo-localization for cars and drones: tools around the geoloc_ros nodes.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from geoloc_ros.demo.cli import add_parsers as add_demo  # noqa: PLC0415

    add_demo(sub)

    bag = sub.add_parser("bag", help="inspect and convert bags (rosbag2 mcap/sqlite3, ROS 1)")
    bag_sub = bag.add_subparsers(dest="bag_command", metavar="BAGCOMMAND", required=True)
    p = bag_sub.add_parser("info", help="topics, types, counts and duration of a bag")
    p.add_argument("bag", help="rosbag2 directory, .mcap, .db3 or ROS 1 .bag")
    p.set_defaults(func=_cmd_bag_info)
    p = bag_sub.add_parser("convert", help="convert any bag (ROS 1 included) to rosbag2 mcap")
    p.add_argument("bag", help="input bag")
    p.add_argument("--out", required=True, help="output .mcap file (or rosbag2 directory)")
    p.add_argument("--topics", nargs="*", help="only these topics")
    p.set_defaults(func=_cmd_bag_convert)

    p = sub.add_parser("replay", help="publish a bag over ROS with /clock (ros2 bag play "
                       "without ROS); run the nodes with use_sim_time:=true")  # fmt: skip
    p.add_argument("bag", help="rosbag2 directory, .mcap, .db3 or ROS 1 .bag")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed (default 1x)")
    p.add_argument("--loop", action="store_true", help="start over at the end")
    p.add_argument("--topics", nargs="*", help="only these topics")
    p.add_argument("--clock-hz", type=float, default=100.0, help="/clock rate in bag time")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_replay)

    from geoloc_ros.benchmarks.cli import add_parsers as add_bench  # noqa: PLC0415
    from geoloc_ros.eval.cli import add_parsers as add_eval  # noqa: PLC0415
    from geoloc_ros.io.importers.cli import add_parsers as add_import  # noqa: PLC0415
    from geoloc_ros.neuralmap import cli as neuralmap_cli  # noqa: PLC0415
    from geoloc_ros.posenet import cli as posenet_cli  # noqa: PLC0415
    from geoloc_ros.sim.cli import add_parsers as add_sim  # noqa: PLC0415

    add_sim(sub)
    add_import(sub)
    add_eval(sub)
    train = sub.add_parser("train", help="train the learned localizers")
    ts = train.add_subparsers(dest="train_command", metavar="MODEL", required=True)
    export = sub.add_parser("export", help="export trained models to ONNX")
    es = export.add_subparsers(dest="export_command", metavar="MODEL", required=True)
    for module in (neuralmap_cli, posenet_cli):
        module.add_train_parser(ts)
        module.add_export_parser(es)
    neuralmap_cli.add_map_parser(sub)
    add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("evo", "matplotlib"):  # their INFO lines are not ours to show
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from geoloc_ros.errors import GeolocError  # noqa: PLC0415

    try:
        return int(args.func(args) or 0)
    except _UsageError as exc:
        parser.error(str(exc))  # exits 2 with the usage line, as argparse does
    except GeolocError as exc:
        print(f"geoloc: error: {exc}", file=sys.stderr)
    except OSError as exc:  # missing files, unwritable outputs, full disks
        where = f": {exc.filename}" if exc.filename else ""
        print(f"geoloc: error: {exc.strerror or exc}{where}", file=sys.stderr)
    except KeyboardInterrupt:
        print("geoloc: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
