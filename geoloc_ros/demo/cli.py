"""`geoloc demo`: the parser, and the table printed at the end."""

from __future__ import annotations

import argparse
from pathlib import Path


def _window(text: str) -> tuple[float, float]:
    from geoloc_ros.eval.cli import _window as window  # noqa: PLC0415

    return window(text)


def _cmd_demo(args: argparse.Namespace) -> int:
    from geoloc_ros.cli import _prepare_out_dir, _usage  # noqa: PLC0415
    from geoloc_ros.demo.report import format_live, format_table  # noqa: PLC0415
    from geoloc_ros.demo.run import DemoOptions, run_demo  # noqa: PLC0415
    from geoloc_ros.demo.scenario import DemoScenario  # noqa: PLC0415

    if args.duration <= 0:
        raise _usage(f"--duration must be positive, got {args.duration}")
    scn = DemoScenario(platform=args.platform, duration_s=args.duration, seed=args.seed,
                       outage_s=args.outage)  # fmt: skip
    out = Path(args.out)
    _prepare_out_dir(out)
    opt = DemoOptions(out=out, cache=Path(args.cache),
                      config=Path(args.config) if args.config else None,
                      map_model=Path(args.map_model) if args.map_model else None,
                      posenet_model=Path(args.posenet_model) if args.posenet_model else None,
                      progress=not args.quiet, live=args.live,
                      live_rate=args.live_rate, jobs=args.jobs)  # fmt: skip
    r = run_demo(scn, opt)
    s = r.summary
    a, d = scn.outage_s
    print(f"\ngeoloc demo: {scn.platform}, {scn.duration_s:g} s on the {scn.world_name} world "
          f"(seed {scn.seed}), GNSS outage {a:g}-{a + d:g} s")  # fmt: skip
    print(format_table(r.results))
    for key, lack in r.skipped.items():
        print(f"row {key} skipped: needs {', '.join(lack)}")
    if s["live"]:
        print(format_live(s["live"]))
    made = ", ".join(s["made"]) or "nothing (all from the cache)"
    print(f"\nmade this run: {made}; {s['wall_s']:.0f} s in all")
    print(f"report: {out}/report.md (trajectory.png, errors.png, metrics.json, *.tum)")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole pipeline on a simulated drive: table and report")
    p.add_argument("--out", default="out/demo", help="report folder (default: out/demo)")
    p.add_argument("--platform", choices=("car", "drone"), default="car")
    p.add_argument(
        "--cache",
        default="out/cache",
        help="world, drive and map; later runs reuse them (default out/cache)",
    )
    p.add_argument("--duration", type=float, default=180.0, help="drive length, s (default 180)")
    p.add_argument("--seed", type=int, default=7, help="drive seed: route, noise (default 7)")
    p.add_argument("--outage", type=_window, default=(90.0, 60.0), metavar="START:DURATION",
                   help="GNSS outage, seconds from the start (default 90:60)")  # fmt: skip
    p.add_argument("--config", help="ROS parameter YAML (default: config/<platform>.yaml)")
    p.add_argument("--map-model", help="neural map model (default: the shipped one)")
    p.add_argument("--posenet-model", help="PoseNet model (default: posenet_node.model, else "
                   "the shipped demo-world car model)")  # fmt: skip
    p.add_argument("--jobs", type=int, default=0,
                   help="rows replayed at once (default: one per core, at most 4)")  # fmt: skip
    p.add_argument("--live", action="store_true",
                   help="also replay the drive over DDS into the node processes (use_sim_time),"
                   " record their outputs and compare with the offline run")  # fmt: skip
    p.add_argument("--live-rate", type=float, default=1.0,
                   help="bag seconds per wall second of the live replay (default 1)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)
