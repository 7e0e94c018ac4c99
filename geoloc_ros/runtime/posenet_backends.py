"""PoseNet inference backends: PyTorch (CPU/CUDA), ONNX Runtime, TensorRT (through ORT).

Each backend runs the two halves the MC sampler needs: `features` (the backbone, once
per frame) and `head` (a batch of dropout samples with explicit masks). Same masks in,
same numbers out, whichever backend: that is what the parity test checks.
"""

from __future__ import annotations

import logging
import warnings
from typing import Protocol

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.posenet.bundle import PoseNetBundle, build_torch_model

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
BACKBONE_ONNX = "backbone.onnx"
HEAD_ONNX = "head.onnx"


class PoseNetRunner(Protocol):
    name: str

    def features(self, x: np.ndarray) -> np.ndarray:
        """(B, C, H, W) float32 in [-1, 1] -> (B, D) float32."""

    def head(self, feat: np.ndarray, mask_hidden: np.ndarray) -> np.ndarray:
        """(N or 1, D), (N, hidden) float32 -> (N, out_dim) float32."""


class TorchRunner:
    def __init__(self, bundle: PoseNetBundle, device: str = "cpu") -> None:
        import torch  # noqa: PLC0415

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("device cuda requested but PyTorch sees no CUDA GPU")
        self.torch = torch
        self.device = torch.device(device)
        self.model = build_torch_model(bundle).to(self.device)
        self.name = f"torch-{self.device.type}"

    def features(self, x: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            t = self.torch.from_numpy(x).to(self.device)
            return self.model.backbone(t).cpu().numpy()

    def head(self, feat: np.ndarray, mask_hidden: np.ndarray) -> np.ndarray:
        t = self.torch
        with t.inference_mode():
            args = [t.from_numpy(a).to(self.device) for a in (feat, mask_hidden)]
            return self.model.head(*args).cpu().numpy()


class OrtRunner:
    """ONNX Runtime with the given execution providers (CPU, CUDA, TensorRT)."""

    def __init__(self, bundle: PoseNetBundle, providers: list[str], threads: int = 0) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        available = ort.get_available_providers()
        missing = [p for p in providers if p not in available]
        if missing:
            raise ConfigError(
                f"ONNX Runtime lacks {', '.join(missing)} (available: {', '.join(available)}); "
                "TensorRT needs an NVIDIA GPU with onnxruntime-gpu and tensorrt installed"
            )
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        # no busy-waiting between runs: a node shares the cores with the fusion, the map
        # localizer and (in the bench) PyTorch, whose work a spinning pool slows many-fold
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._bb = ort.InferenceSession(str(bundle.path(BACKBONE_ONNX)), opts, providers=providers)
        self._head = ort.InferenceSession(str(bundle.path(HEAD_ONNX)), opts, providers=providers)
        self.name = "onnxruntime" if providers == ["CPUExecutionProvider"] else providers[0]

    def features(self, x: np.ndarray) -> np.ndarray:
        return self._bb.run(None, {"image": np.ascontiguousarray(x, np.float32)})[0]

    def head(self, feat: np.ndarray, mask_hidden: np.ndarray) -> np.ndarray:
        feeds = {"features": feat, "mask_hidden": mask_hidden}
        feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()}
        return self._head.run(None, feeds)[0]


def make_runner(bundle: PoseNetBundle, backend: str = "torch", device: str = "cpu",
                threads: int = 0):  # fmt: skip
    """The backend named by the `backend` parameter; a clear error if it cannot run here.
    `threads` > 0 caps the CPU threads (torch's or onnxruntime's); 0 = the library default."""
    if backend == "torch":
        if threads:
            import torch  # noqa: PLC0415

            torch.set_num_threads(threads)
        return TorchRunner(bundle, device)
    if backend == "onnxruntime":
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return OrtRunner(bundle, providers, threads)
    if backend == "tensorrt":
        return OrtRunner(
            bundle, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
            threads,
        )  # fmt: skip
    raise ConfigError(f"unknown PoseNet backend {backend!r}; one of {', '.join(BACKENDS)}")


def export_onnx(bundle: PoseNetBundle) -> list[str]:
    """Write backbone.onnx and head.onnx (dynamic batch) beside the weights; record hashes."""
    import torch  # noqa: PLC0415

    model = build_torch_model(bundle)
    cfg = bundle.config
    with warnings.catch_warnings():
        # the TorchScript exporter on purpose: the dynamo one needs onnxscript (notes/ros-env.md)
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript", DeprecationWarning
        )
        _export(model, cfg, bundle.directory, torch)
    for name in (BACKBONE_ONNX, HEAD_ONNX):
        bundle.add_file(name)
    return [BACKBONE_ONNX, HEAD_ONNX]


def _export(model, cfg, d, torch) -> None:
    h, w = cfg.input_hw
    x = torch.zeros(1, cfg.channels, h, w)
    torch.onnx.export(
        model.backbone, (x,), str(d / BACKBONE_ONNX), input_names=["image"],
        output_names=["features"], dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17, dynamo=False,
    )  # fmt: skip
    # features and masks have their own batch axes: one frame's (1, D) features broadcast
    # to its N masks at run time, N frames' features meet N masks in a batch
    args = (torch.zeros(2, cfg.feature_dim), torch.ones(2, cfg.hidden))
    names = ["features", "mask_hidden"]
    axes = {"features": {0: "frames"}, "mask_hidden": {0: "samples"}, "pose": {0: "samples"}}
    torch.onnx.export(
        model.head, args, str(d / HEAD_ONNX), input_names=names, output_names=["pose"],
        dynamic_axes=axes,
        opset_version=17, dynamo=False,
    )  # fmt: skip
