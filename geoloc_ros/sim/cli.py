"""`geoloc sim ...` verbs. Parsers only here; the work is imported when a verb runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def _world_config(args: argparse.Namespace):
    from geoloc_ros.errors import ConfigError  # noqa: PLC0415
    from geoloc_ros.sim.world import WorldConfig  # noqa: PLC0415

    if args.preset and args.seed is not None:
        raise ConfigError("give either --preset or --seed, not both")
    if args.preset:
        return WorldConfig.preset(args.preset)
    return WorldConfig.for_seed(0 if args.seed is None else args.seed)


def _cmd_world(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415

    from geoloc_ros.sim.world import write_world  # noqa: PLC0415

    cfg = _world_config(args)
    t0 = time.perf_counter()
    world, created = write_world(cfg, Path(args.out), progress=not args.quiet)
    if not created:
        print(f"{args.out}: world (seed {cfg.seed}) exists already, nothing to do")
        return 0
    size = sum(f.stat().st_size for f in Path(args.out).iterdir())
    c = world.layout
    print(
        f"wrote {args.out} in {time.perf_counter() - t0:.1f} s ({size / 1e6:.1f} MB): "
        f"{len(c.roads)} roads, {len(c.buildings)} buildings, {len(c.trees)} trees, "
        f"{len(c.poles)} poles; EPSG:{world.utm.epsg}, {cfg.gsd_m} m/px"
    )
    return 0


def _altitude_range(text: str) -> tuple[float, float]:
    from geoloc_ros.errors import ConfigError  # noqa: PLC0415

    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"--drone-altitude wants MIN:MAX metres, got {text!r}") from None
    return lo, hi


def _cmd_drive(args: argparse.Namespace) -> int:
    from geoloc_ros.io.bag import check_output  # noqa: PLC0415
    from geoloc_ros.sim.drive import DriveConfig, parse_outage  # noqa: PLC0415
    from geoloc_ros.sim.world import World  # noqa: PLC0415

    cfg = DriveConfig(
        platform=args.platform,
        duration_s=args.duration,
        seed=args.seed,
        gnss_outages=tuple(parse_outage(o) for o in args.gnss_outage or ()),
        drone_camera=args.drone_camera,
        drone_altitude_m=_altitude_range(args.drone_altitude),
        appearance=args.appearance,
        camera_rate_hz=args.camera_rate,
    )
    out = Path(args.out)
    check_output(out)  # before the world loads: fail fast
    world = World.load(args.world)
    from geoloc_ros.sim.drive import simulate_drive  # noqa: PLC0415

    s = simulate_drive(world, cfg, out, progress=not args.quiet)
    print(
        f"wrote {s.bag} ({s.bytes / 1e6:.0f} MB): {s.platform}, {s.duration_s:g} s, "
        f"{s.frames} images, {s.imu} IMU, {s.fixes} fixes ({s.fixes_in_burst} in multipath "
        f"bursts, {s.fixes_in_outage} epochs lost to outages)"
    )
    return 0


def _cmd_dataset(args: argparse.Namespace) -> int:
    from geoloc_ros.sim.dataset import DatasetConfig, write_dataset  # noqa: PLC0415
    from geoloc_ros.sim.world import World  # noqa: PLC0415

    cfg = DatasetConfig(
        platform=args.platform,
        samples=args.samples,
        seed=args.seed,
        drone_camera=args.drone_camera,
        split_by=args.split_by,
        drone_heading=args.drone_heading,
        drone_altitude_m=_altitude_range(args.drone_altitude),
        car_route_fraction=args.car_route_fraction,
        fractions=tuple(args.fractions),
    )
    world = World.load(args.world)
    counts = write_dataset(world, cfg, Path(args.out), progress=not args.quiet)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _cmd_picture(args: argparse.Namespace) -> int:
    from geoloc_ros.sim.picture import make_picture  # noqa: PLC0415
    from geoloc_ros.sim.world import World  # noqa: PLC0415

    path = make_picture(World.load(args.world), Path(args.out), seed=args.seed)
    print(f"wrote {path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    sim = sub.add_parser("sim", help="synthetic geo-referenced worlds and simulated drives")
    ss = sim.add_subparsers(dest="sim_command", metavar="SIMCOMMAND", required=True)

    p = ss.add_parser("world", help="generate a town with orthophoto, DSM and semantic GeoTIFFs")
    p.add_argument("--seed", type=int, help="world seed (default 0)")
    p.add_argument("--preset", choices=["demo"], help="a named world (demo: the demo's)")
    p.add_argument("--out", required=True, help="world directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_world)

    p = ss.add_parser("drive", help="simulate a car drive or drone flight into a rosbag2 mcap")
    p.add_argument("--world", required=True, help="world directory (geoloc sim world)")
    p.add_argument("--platform", default="car", help="car or drone")
    p.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    p.add_argument("--seed", type=int, default=0, help="drive seed: route, noise, appearance")
    p.add_argument("--out", required=True, help="output .mcap")
    p.add_argument(
        "--gnss-outage",
        action="append",
        metavar="START:DURATION",
        help="GNSS outage, seconds from the bag's start (repeatable)",
    )
    p.add_argument("--drone-camera", default="nadir", help="nadir or oblique")
    p.add_argument(
        "--drone-altitude", default="50:120", metavar="MIN:MAX", help="metres above ground"
    )
    p.add_argument("--appearance", default="random", help="random (default) or map")
    p.add_argument("--camera-rate", type=float, default=10.0,
                   help="camera frames per second, 10-20; 0 = none (fusion-only)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_drive)

    p = ss.add_parser("dataset", help="posed images with map crops for training, split by area")
    p.add_argument("--world", required=True, help="world directory")
    p.add_argument("--platform", default="car", help="car or drone")
    p.add_argument("--samples", type=int, default=2000, help="samples in all splits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drone-camera", default="nadir", help="nadir or oblique")
    p.add_argument(
        "--drone-heading",
        default="any",
        help="any (uniform yaw, default) or survey (east/west lines as the simulated "
        "survey flights fly, 10%% at any heading)",
    )
    p.add_argument(
        "--drone-altitude", default="50:120", metavar="MIN:MAX", help="metres above ground"
    )
    p.add_argument("--car-route-fraction", type=float, default=0.0, metavar="F",
                   help="share of car samples posed along planned drives (turns at junctions, "
                   "stops) instead of on a road with its heading")  # fmt: skip
    p.add_argument(
        "--split-by",
        default="area",
        help="area: train/val/test in separate bands (map localizer, default); "
        "sample: all splits over the whole world (PoseNet, one known area)",
    )
    p.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=(0.6, 0.2, 0.2),
        metavar=("TRAIN", "VAL", "TEST"),
        help="share of the samples (and, by area, of the world's width) per split",
    )
    p.add_argument("--out", required=True, help="dataset directory")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_dataset)

    p = ss.add_parser("picture", help="PNG: orthophoto with a drive, a car view, a drone view")
    p.add_argument("--world", required=True, help="world directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output .png")
    p.set_defaults(func=_cmd_picture)
