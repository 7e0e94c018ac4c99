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


def _cmd_fusion(args: argparse.Namespace) -> int:
    from geoloc_ros.benchmarks.fusion import run  # noqa: PLC0415

    world = Path(args.world)
    if args.world == DEFAULT_WORLD:
        _ensure_world(world, args.quiet)
    r = run(world, Path(args.out), args.drive, args.memory_drive, args.seed)
    lat = r["node_latency"]
    print(f"fusion benchmark through {lat['code_path']}, {lat['drive_s']:.0f} s car drive")
    print(f"{'':<22}{'median ms':>10}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'n':>8}")
    for key in ("imu_sample_ms", "keyframe_update_ms", "other_inputs_ms", "path_publish_ms"):
        s = lat.get(key)
        if s:
            print(f"{key:<22}{s['median']:>10.3f}{s['p95']:>9.3f}{s['p99']:>9.3f}"
                  f"{s['max']:>9.2f}{s['n']:>8}")  # fmt: skip
    ev = r["eval_comma2k19"]
    if ev:
        print(f"eval comma2k19: {ev['data_s']:.0f} s in {ev['wall_s']:.2f} s "
              f"= {ev['realtime_factor']:.1f}x real time (reader process: "
              f"{ev['reader_process']}; all in one process {ev['in_process_wall_s']:.2f} s "
              f"= {ev['in_process_realtime_factor']:.1f}x)")  # fmt: skip
    else:
        print("eval comma2k19: skipped (../shared/data/comma2k19_seg40 not found)")
    mem = r.get("memory")
    if mem:
        print(f"memory: {mem['data_min']:.0f} min replayed in {mem['wall_s']:.0f} s; RSS "
              f"{mem['rss_mb_at_5_min']:.0f} MB at 5 min, {mem['rss_mb_at_end']:.0f} MB at end, "
              f"slope {mem['rss_slope_mb_per_hour_after_5_min']:.1f} MB/h")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


def _cmd_posenet(args: argparse.Namespace) -> int:
    from geoloc_ros.benchmarks.posenet import run  # noqa: PLC0415

    r = run(args.model, Path(args.out), args.frames, args.samples, args.threads, args.data,
            args.ood, args.test_images)  # fmt: skip
    n = r["samples"]
    print(f"PoseNet latency, {r['image'][0]}x{r['image'][1]} image, N={n} dropout samples")
    print(f"{'backend':<13}{'1 pass ms':>10}{f'MC{n} ms':>10}{'ratio':>7}"
          f"{f'naive MC{n} ms':>16}{'ratio':>7}")  # fmt: skip
    for backend in ("torch", "onnxruntime"):
        s = r.get(backend)
        if s:
            print(f"{backend:<13}{s['deterministic']['median_ms']:>10.2f}"
                  f"{s[f'mc{n}']['median_ms']:>10.2f}{s['ratio_mc_to_deterministic']:>7.2f}"
                  f"{s[f'naive_mc{n}']['median_ms']:>16.1f}"
                  f"{s['ratio_naive_to_deterministic']:>7.1f}")  # fmt: skip
    u = r.get("uncertainty")
    if u:
        a = u["in_area"]["accuracy"]
        print(f"test split: median {a['median_m']:.2f} m, {a['median_deg']:.2f} deg; 95% region "
              f"holds {a['coverage95_position']:.1%} (raw {a['coverage95_position_raw']:.1%}); "
              f"Spearman(sigma, error) {a['spearman_sigma_error']:.2f}")  # fmt: skip
        ranks = ", ".join(f"{k} {v:.2f}" for k, v in a["spearman_by_signal"].items())
        print(f"Spearman with the error, per signal: {ranks}")
        print(f"{'frames':<16}{'trace cov_p m2':>15}{'x in-area':>10}{'MC only x':>10}")
        par = u.pop("onnx_parity_test_split", None)
        for name, v in u.items():
            print(f"{name:<16}{v['median_trace_cov_p_m2']:>15.2f}{v['ratio_to_in_area']:>10.1f}"
                  f"{v['ratio_mc_only']:>10.1f}")  # fmt: skip
        if par:
            f, h = par["max_abs_diff_features"], par["max_abs_diff_head_outputs"]
            print(f"ONNX parity over {par['images']} test images: features {f:.1e}, head {h:.1e}")
    print(f"wrote {args.out}")
    return 0


def _cmd_neuralmap(args: argparse.Namespace) -> int:
    from geoloc_ros.benchmarks.neuralmap import run  # noqa: PLC0415

    r = run(args.model, args.data, Path(args.out), args.split, args.frames, args.latency_frames,
            args.prior_sigma, args.window, args.yaw_bins, args.seed, args.threads,
            args.calibrate, Path(args.maps), args.onnx_parity, not args.quiet)  # fmt: skip
    p = r["protocol"]
    print(f"neural map localizer ({r['platform']}), prior sigma {p['prior_sigma_m']:g} m, "
          f"window {p['window_m']:g} m, {p['yaw_bins']} yaw bins, no yaw prior")  # fmt: skip
    print(f"{'dataset':<34}{'frames':>7}{'1m':>6}{'3m':>6}{'5m':>6}{'1deg':>6}{'3deg':>6}"
          f"{'5deg':>6}{'cov95':>7}{'multi':>7}")  # fmt: skip
    rows = [(k, v["accuracy"]) for k, v in r["datasets"].items()]
    if "all" in r:
        rows.append(("all", r["all"]))
    for name, a in rows:
        rp, ry = a["recall_position"], a["recall_yaw"]
        print(f"{name[-34:]:<34}{a['frames']:>7}{rp['1m']:>6.0%}{rp['3m']:>6.0%}{rp['5m']:>6.0%}"
              f"{ry['1deg']:>6.0%}{ry['3deg']:>6.0%}{ry['5deg']:>6.0%}"
              f"{a['coverage95_xy'] or 0:>7.0%}{a['multimodal_share'] or 0:>7.0%}")  # fmt: skip
    for _k, v in r["datasets"].items():
        if v.get("onnx_parity"):
            o = v["onnx_parity"]
            print(f"ONNX parity over {o['frames']} frames: BEV features "
                  f"{o['max_abs_diff_bev_features']:.1e}, confidence "
                  f"{o['max_abs_diff_confidence']:.1e}, map features "
                  f"{o['max_abs_diff_map_features']:.1e}; identical argmax "
                  f"{o['argmax_identical']:.1%}; total {o['total_ms_median']}")  # fmt: skip
        for name, t in v.get("latency", {}).items():
            bins = f"{t['yaw_bins_searched']} yaw bins" if "yaw_bins_searched" in t else "yaw bins"
            print(
                f"latency {name} ({bins}, 64 m): encoder {t['encoder']:.0f} ms, lifting "
                f"{t['lifting']:.0f} ms, map read {t['map_read']:.0f} ms, matching "
                f"{t['matching']:.0f} ms, total {t['total']:.0f} ms (p95 {t['p95_total']:.0f})"
            )
        break
    if "calibration_written" in r:
        print(f"calibration written to the model card: {r['calibration_written']}")
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
    p = bs.add_parser("fusion", help="fusion node latency, eval speed, memory over a long drive")
    p.add_argument("--world", default=DEFAULT_WORLD, help="world for the simulated drives")
    p.add_argument("--drive", type=float, default=300.0, help="latency drive length [s]")
    p.add_argument("--memory-drive", type=float, default=3600.0,
                   help="memory drive length [s]; 0 skips it")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/fusion.json")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_fusion)
    p = bs.add_parser("posenet", help="PoseNet latency: one pass vs MC dropout, per backend")
    p.add_argument("--model", default="", help="model folder (default: the shipped one)")
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--data", help="dataset whose test split measures accuracy and covariances")
    p.add_argument("--ood", help="dataset of another area: out-of-area covariances")
    p.add_argument("--test-images", type=int, default=400,
                   help="test images for accuracy and covariances (0 = all)")  # fmt: skip
    p.add_argument("--out", default="benchmarks/results/posenet.json")
    p.set_defaults(func=_cmd_posenet)
    p = bs.add_parser("neuralmap", help="map localizer recall, calibration and CPU latency")
    p.add_argument("--model", default="", help="model folder (default: the shipped car model)")
    p.add_argument("--data", nargs="+", required=True,
                   help="datasets of worlds never used in training")  # fmt: skip
    p.add_argument("--split", default="test", help="train, val, test or all")
    p.add_argument("--frames", type=int, default=300, help="frames per dataset (0 = all)")
    p.add_argument(
        "--latency-frames", type=int, default=30, help="node-setting latency frames (0: none)"
    )
    p.add_argument("--prior-sigma", type=float, default=20.0, help="prior noise sigma [m]")
    p.add_argument("--window", type=float, default=128.0, help="searched square side [m]")
    p.add_argument("--yaw-bins", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="fit the covariance calibration on these frames and write it to the card",
    )
    p.add_argument("--maps", default="out/maps", help="where per-world maps are built")
    p.add_argument("--onnx-parity", type=int, default=0, metavar="FRAMES",
                   help="also compare onnxruntime with PyTorch on this many frames")  # fmt: skip
    p.add_argument("--out", default="benchmarks/results/neuralmap.json")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_neuralmap)
