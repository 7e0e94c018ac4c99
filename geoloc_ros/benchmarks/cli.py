"""`geoloc bench ...` verbs. Parsers only; benchmarks import their stacks when run."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_WORLD = "out/worlds/demo"


def _ensure_world(path: Path, quiet: bool) -> None:
    from geoloc_ros.sim.world import WorldConfig, write_world  # noqa: PLC0415

    if not (path / "manifest.json").is_file():
        write_world(WorldConfig.preset("demo"), path, progress=not quiet)


def _cmd_render(args: argparse.Namespace) -> int:
    from geoloc_ros.benchmarks.render import run  # noqa: PLC0415

    world = Path(args.world)
    if args.world == DEFAULT_WORLD:
        _ensure_world(world, args.quiet)
    r = run(world, Path(args.out), frames=args.frames, seed=args.seed)
    print(f"render benchmark ({r['world']['triangles']} triangles, setup {r['setup_s']:.1f} s)")
    print(f"{'camera':<16}{'resolution':>12}{'fps median':>12}{'fps mean':>10}{'p95 ms':>9}")
    for name in ("car", "drone_nadir", "drone_oblique"):
        c = r[name]
        res = "x".join(map(str, c["resolution"]))
        print(
            f"{name:<16}{res:>12}{c['fps_median']:>12.1f}{c['fps_mean']:>10.1f}{c['ms_p95']:>9.1f}"
        )
    print(f"wrote {args.out}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="benchmarks (speed, accuracy) written as JSON")
    bs = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    p = bs.add_parser("render", help="simulator renderer frames/s, car and drone cameras")
    p.add_argument(
        "--world",
        default=DEFAULT_WORLD,
        help=f"world directory (default {DEFAULT_WORLD}, made if missing)",
    )
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/render.json")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_render)
