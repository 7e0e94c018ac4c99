"""`geoloc train neuralmap`, `geoloc export neuralmap` and `geoloc map build`."""

from __future__ import annotations

import argparse
import shlex
import sys


def _cmd_train(args: argparse.Namespace) -> int:
    from geoloc_ros.neuralmap.train import TrainConfig, train_neuralmap  # noqa: PLC0415

    tc = TrainConfig(
        platform=args.platform, epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
        threads=args.threads, positions=args.positions, yaw_bins=args.yaw_bins,
        workers=args.workers, max_train=args.max_train, val_samples=args.val_samples,
        device=args.device, stop_after=args.stop_after, init=args.init,
        input_hw=tuple(args.input_hw) if args.input_hw else None, bev_depth_m=args.bev_depth,
        along_weight=args.along_weight, centre_drop=args.centre_drop,
    )  # fmt: skip
    command = "geoloc " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    b = train_neuralmap(args.data, args.out, tc, args.resume, not args.quiet, command)
    if b is None:
        print(f"stopped; continue with --resume (checkpoint in {args.out}/)")
    else:
        print(f"neural map localizer ({b.config.platform}): "
              f"{b.training['seconds'] / 60:.1f} min training, model in {args.out}/")  # fmt: skip
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from geoloc_ros.neuralmap.bundle import load_bundle  # noqa: PLC0415
    from geoloc_ros.runtime.neuralmap_backends import export_onnx  # noqa: PLC0415

    names = export_onnx(load_bundle(args.model))
    print(f"wrote {', '.join(names)} in {args.model} (hashes recorded in neuralmap.json)")
    return 0


def _cmd_map_build(args: argparse.Namespace) -> int:
    from geoloc_ros.neuralmap.tiles import build_map  # noqa: PLC0415

    info = build_map(args.out, args.model, world=args.world, ortho=args.ortho,
                     datum=args.datum, progress=not args.quiet)  # fmt: skip
    print(
        f"neural map {info['width']} x {info['height']} cells at {info['res_m']} m in {args.out}/"
    )
    return 0


def _datum(text: str) -> tuple[float, float, float]:
    try:
        lat, lon, alt = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LAT,LON,ALT, got {text!r}") from None
    return lat, lon, alt


def add_train_parser(ts: argparse._SubParsersAction) -> None:
    p = ts.add_parser("neuralmap", help="neural map localizer (camera -> BEV -> map matching)")
    p.add_argument("--data", required=True, nargs="+",
                   help="`geoloc sim dataset` folders (split by area)")  # fmt: skip
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--platform", default="car", choices=["car", "drone"])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (one-cycle)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--positions", type=int, default=24, help="candidate cells per crop axis")
    p.add_argument("--yaw-bins", type=int, default=32, help="yaw bins while training")
    p.add_argument("--workers", type=int, default=1, help="data loader processes")
    p.add_argument("--max-train", type=int, default=0, help="use only this many (quick checks)")
    p.add_argument("--val-samples", type=int, default=200)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    p.add_argument("--stop-after", type=int, default=0, metavar="STEPS",
                   help="end this run after STEPS steps; --resume continues it")  # fmt: skip
    p.add_argument("--init", default="", metavar="MODEL",
                   help="start from this model's weights (fine-tune on new areas)")  # fmt: skip
    p.add_argument("--input-hw", type=int, nargs=2, metavar=("H", "W"),
                   help="network input size (default: the --init model's, else the "
                        "platform's)")  # fmt: skip
    p.add_argument("--bev-depth", type=float, metavar="M",
                   help="car BEV reach ahead in metres (default 32; --init from a shorter "
                        "one extends its depth bins)")  # fmt: skip
    p.add_argument("--along-weight", type=float, default=0.0, metavar="W",
                   help="weight of the along-street loss: the truth against the same street "
                        "ahead, behind and reversed (0 = the volume's nll alone)")  # fmt: skip
    p.add_argument("--centre-drop", type=float, default=0.0, metavar="P",
                   help="share of car frames trained with the BEV's central band "
                        "(3.5 m each side of the axis) left out: the sides learn to "
                        "place a frame alone")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)


def add_export_parser(es: argparse._SubParsersAction) -> None:
    p = es.add_parser("neuralmap", help="ONNX BEV and map encoders for onnxruntime / TensorRT")
    p.add_argument("model", help="neural map model folder")
    p.set_defaults(func=_cmd_export)


def add_map_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("map", help="neural maps from geo-referenced rasters")
    ms = m.add_subparsers(dest="map_command", metavar="MAPCOMMAND", required=True)
    p = ms.add_parser("build", help="encode an orthophoto (or a simulated world) into map tiles")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--world", help="a `geoloc sim world` folder")
    src.add_argument("--ortho", help="an RGB orthophoto GeoTIFF with a CRS")
    p.add_argument("--out", required=True, help="map folder to write")
    p.add_argument("--model", help="neural map model folder (default: the shipped car model)")
    p.add_argument("--datum", type=_datum, help="LAT,LON,ALT of the map frame origin "
                   "(default: the world's datum, or the orthophoto's centre)")  # fmt: skip
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_map_build)
