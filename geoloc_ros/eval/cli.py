"""`geoloc eval BAG --out DIR`: the parser and a short table of the results."""

from __future__ import annotations

import argparse
from typing import Any


def _window(text: str) -> tuple[float, float]:
    start, sep, dur = text.partition(":")
    try:
        a, d = float(start), float(dur)
    except ValueError:
        msg = f"expected START:DURATION in seconds, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not sep or a < 0 or d <= 0:
        raise argparse.ArgumentTypeError(f"expected START>=0 and DURATION>0, got {text!r}")
    return a, d


def _cmd_eval(args: argparse.Namespace) -> int:
    from geoloc_ros.errors import GeolocError  # noqa: PLC0415
    from geoloc_ros.eval.report import fusion_config, parse_estimators, run_eval  # noqa: PLC0415

    if args.compare:
        from geoloc_ros.eval.compare import compare_runs, format_rows  # noqa: PLC0415

        if args.bag:
            raise GeolocError("give a bag or --compare REPORT..., not both")
        r = compare_runs(args.compare, args.out, args.compare_estimate)
        print(format_rows(r["rows"]))
        print(f"wrote {args.out}/compare.json and compare.png ({r['estimate']} overlaid)")
        return 0
    if not args.bag:
        raise GeolocError("give a bag to evaluate (or --compare REPORT...)")

    estimators = parse_estimators(args.estimators)
    cfg = fusion_config(args.config, args.set or ())
    posenet = posenet_config(args)
    fuse = [f.strip() for f in (args.fuse or "").split(",") if f.strip()]
    wants_map = "map_localizer" in estimators or "map_localizer" in fuse
    mcfg = map_localizer_config(args) if wants_map else None
    rep = run_eval(args.bag, args.out, cfg, estimators, args.gnss_outage, args.no_gnss,
                   progress=not args.quiet, posenet=posenet, map_localizer=mcfg,
                   prior_sigma_m=args.prior_sigma, seed=args.seed, fuse=fuse)  # fmt: skip
    print(format_table(rep))
    print(f"report in {args.out}/ (metrics.json, *.tum, trajectories.png, errors.png)")
    return 0


def _node_config(args: argparse.Namespace, cls, section: str, flags: dict[str, Any]):
    """`section` of --config as `cls` (its defaults without one), then the flags given."""
    import dataclasses  # noqa: PLC0415

    from geoloc_ros.config import load_node_config, node_section, read_yaml  # noqa: PLC0415

    cfg = cls()
    if args.config and node_section(read_yaml(args.config), section, args.config):
        cfg = load_node_config(cls, args.config, section)
    return dataclasses.replace(cfg, **{k: v for k, v in flags.items() if v})


def map_localizer_config(args: argparse.Namespace):
    """The map_localizer_node section of --config (defaults without one), then the flags."""
    from geoloc_ros.neuralmap.inputs import MapLocalizerConfig  # noqa: PLC0415

    flags = {"map": args.map, "model": args.map_model, "platform": args.platform}
    return _node_config(args, MapLocalizerConfig, "map_localizer_node", flags)


def posenet_config(args: argparse.Namespace):
    """The posenet_node section of --config (defaults without one), then the flags.

    The section's platform picks the shipped model and its max_rate_hz paces the fixes
    fed to the fusion, as posenet_node does on the vehicle.
    """
    from geoloc_ros.posenet.localizer import PoseNetNodeConfig  # noqa: PLC0415

    flags = {"model": args.posenet_model, "backend": args.posenet_backend,
             "platform": args.platform}  # fmt: skip
    return _node_config(args, PoseNetNodeConfig, "posenet_node", flags)


def _f(v: Any, fmt: str = ".2f") -> str:
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def format_table(rep: dict[str, Any]) -> str:
    """One line per estimate: horizontal RMSE and max, outage max, 3-D RMSE."""
    rows = [f"{'estimate':<10}{'RMSE_h [m]':>12}{'max_h [m]':>11}{'outage max':>12}"
            f"{'RMSE_3d [m]':>13}{'poses':>8}"]  # fmt: skip
    for name, e in rep["estimates"].items():
        h = e.get("ape_horizontal_m", {})
        d3 = e.get("ape_3d_m", {})
        rows.append(f"{name:<10}{_f(h.get('rmse')):>12}{_f(h.get('max')):>11}"
                    f"{_f(e.get('max_horizontal_in_outage_m')):>12}{_f(d3.get('rmse')):>13}"
                    f"{e['poses']:>8}")  # fmt: skip
    fus = rep["estimates"].get("fusion", {})
    if fus.get("final_position_m") is not None:
        rows.append(
            "fusion final position [m]: " + ", ".join(f"{v:.2f}" for v in fus["final_position_m"])
        )
    if fus.get("accepted_fix_residual_h_m"):
        r = fus["accepted_fix_residual_h_m"]
        rows.append(f"fusion to accepted fixes: RMS {r['rms']:.2f} m over {r['fixes']} fixes")
    if fus.get("nees_position"):
        n = fus["nees_position"]
        rows.append(f"fusion NEES inside 95% bounds: {100 * n['fraction_inside']:.1f} %")
    pn = rep["estimates"].get("posenet", {})
    if pn.get("median_position_m") is not None:
        rows.append(f"posenet: median {pn['median_position_m']:.2f} m, "
                    f"{pn['median_rotation_deg']:.2f} deg; 95% region holds "
                    f"{100 * pn['coverage95_position']:.1f} %; {pn['withheld']} of "
                    f"{pn['images']} withheld")  # fmt: skip
    ml = rep["estimates"].get("map_localizer", {})
    if ml.get("recall_position"):
        rp, ry = ml["recall_position"], ml["recall_yaw"]
        pos = "/".join(f"{100 * v:.0f}" for v in rp.values())
        yaw = "/".join(f"{100 * v:.0f}" for v in ry.values())
        rows.append(f"map_localizer: within 1/3/5 m {pos} %, within 1/3/5 deg {yaw} %; "
                    f"95% region holds {100 * ml['coverage95_xy']:.1f} %; "
                    f"{ml['multimodal']} of {ml['fixes']} multi-modal")  # fmt: skip
    for name, f in rep.get("fused", {}).items():
        held = ", ".join(f"{n} {k}" for k, n in f["withheld"].items()) or "none"
        rows.append(f"fused {name}: {f['fixes_to_fusion']} fixes to the fusion; withheld: {held}")
    for name, lack in rep.get("skipped", {}).items():
        rows.append(f"skipped {name}: the bag has no {', '.join(lack)}")
    if rep["rejections"]:
        rows.append("rejected: " + ", ".join(f"{k} {v}" for k, v in rep["rejections"].items()))
    rf = rep.get("realtime_factor")
    rows.append(f"replay: {rep['duration_s']:.1f} s of data in {rep['replay_wall_s']:.1f} s "
                f"({_f(rf, '.0f')}x real time)")  # fmt: skip
    return "\n".join(rows)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("eval", help="replay a bag through the estimators and measure them")
    p.add_argument("bag", nargs="?",
                   help="rosbag2 (.mcap, directory) with /imu, /fix, ... (DESIGN.md)")  # fmt: skip
    p.add_argument("--compare", nargs="+", metavar="REPORT",
                   help="instead of a bag: eval report folders to put side by side")  # fmt: skip
    p.add_argument("--compare-estimate", default="fusion",
                   help="the estimate --compare overlays (default fusion)")  # fmt: skip
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--estimators", default="fusion,gnss",
                   help="comma-separated: fusion, gnss (raw fixes), posenet, map_localizer; "
                   "default fusion,gnss")  # fmt: skip
    p.add_argument("--gnss-outage", type=_window, metavar="START:DURATION",
                   help="withhold fixes in this window, seconds from the bag's start")  # fmt: skip
    p.add_argument("--no-gnss", action="store_true",
                   help="use no fixes: dead reckoning from the map origin")  # fmt: skip
    p.add_argument("--config", help="ROS parameter YAML with a fusion_node section "
                   "(default: built-in defaults)")  # fmt: skip
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override one fusion parameter (repeatable)")  # fmt: skip
    p.add_argument("--posenet-model", default="",
                   help="PoseNet model folder (default: --config's posenet_node.model, else "
                   "the platform's shipped demo-world model)")  # fmt: skip
    p.add_argument(
        "--posenet-backend",
        default="",
        help="torch, onnxruntime or tensorrt (default: --config's, else torch)",
    )
    p.add_argument("--fuse", metavar="LOCALIZERS",
                   help="visual fixes the fusion consumes, computed in the loop with the "
                   "fusion state as prior (as on the vehicle): map_localizer, posenet")  # fmt: skip
    p.add_argument("--map", default="", help="map folder for map_localizer (geoloc map build)")
    p.add_argument(
        "--map-model",
        default="",
        help="neural map model folder (default: the shipped one for the platform)",
    )
    p.add_argument(
        "--platform",
        choices=("car", "drone"),
        help="map localizer and PoseNet platform (default: --config's node sections)",
    )
    p.add_argument("--prior-sigma", type=float, metavar="M",
                   help="map localizer prior: the true position plus Gaussian noise of this "
                   "sigma [m] (default: the bag's GNSS fixes)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the --prior-sigma noise")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)
