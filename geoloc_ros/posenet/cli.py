"""`geoloc train posenet` and `geoloc export posenet`: parsers and printed summaries."""

from __future__ import annotations

import argparse
import shlex
import sys


def _hw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 120x160, got {text!r}") from None
    return h, w


def _cmd_train(args: argparse.Namespace) -> int:
    from geoloc_ros.posenet.train import TrainConfig, train_posenet  # noqa: PLC0415

    tc = TrainConfig(
        epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, threads=args.threads,
        input_hw=args.input, channels=1 if args.mono else 3, mc_samples=args.samples,
        max_train=args.max_train, anchors=args.anchors, half_turn=args.half_turn,
        init=args.init or "",
    )  # fmt: skip
    command = "geoloc " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    b = train_posenet(args.data, args.out, tc, args.resume, not args.quiet, command)
    print(f"PoseNet for {b.area.get('name')}: {b.training['seconds'] / 60:.1f} min training")
    print(f"{'split':<6}{'median m':>10}{'median deg':>12}{'cov95 raw':>11}{'cov95 cal':>11}"
          f"{'spearman':>10}")  # fmt: skip
    for split, m in b.metrics.items():
        print(f"{split:<6}{m['median_m']:>10.2f}{m['median_deg']:>12.2f}"
              f"{m['coverage95_position_raw']:>11.1%}{m['coverage95_position']:>11.1%}"
              f"{m['spearman_sigma_error']:>10.2f}")  # fmt: skip
    print(f"model in {args.out}/ (posenet.json, posenet.safetensors, train_log.csv)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from geoloc_ros.posenet.bundle import load_bundle  # noqa: PLC0415
    from geoloc_ros.runtime.posenet_backends import export_onnx  # noqa: PLC0415

    bundle = load_bundle(args.model)
    names = export_onnx(bundle)
    print(f"wrote {', '.join(names)} in {args.model} (hashes recorded in posenet.json)")
    return 0


def add_train_parser(ts: argparse._SubParsersAction) -> None:
    p = ts.add_parser("posenet", help="MC-dropout PoseNet for one area (CPU is fine)")
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="`geoloc sim dataset --split-by sample` folder, posed-image folder or EuRoC "
        "folder; several folders of one area are concatenated",
    )
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (one-cycle)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--input", type=_hw, default=(120, 160), help="network input HxW")
    p.add_argument("--mono", action="store_true", help="grayscale images (e.g. EuRoC cam0)")
    p.add_argument("--samples", type=int, default=32, help="MC samples for calibration")
    p.add_argument(
        "--anchors",
        type=int,
        default=256,
        help="position anchors (k-means of training poses); 0 = plain regression",
    )
    p.add_argument(
        "--half-turn",
        action="store_true",
        help="nadir cameras: show each image also turned 180 deg, as the reverse heading",
    )
    p.add_argument(
        "--init",
        help="model folder to fine-tune (same area and input; its anchors and scaling are kept)",
    )
    p.add_argument("--max-train", type=int, default=0, help="use only this many (quick checks)")
    p.add_argument("--resume", action="store_true", help="continue from checkpoint.pt")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)


def add_export_parser(es: argparse._SubParsersAction) -> None:
    p = es.add_parser("posenet", help="ONNX backbone and head for onnxruntime / TensorRT")
    p.add_argument("model", help="PoseNet model folder")
    p.set_defaults(func=_cmd_export)
