"""Neural map encoders as ONNX graphs for onnxruntime (CPU, CUDA) and TensorRT.

Two graphs, both with dynamic batch:
    bev.onnx   image (uint8), grid, valid, elevation -> bev_features, confidence
    map.onnx   raster (uint8, any size multiple of 4) -> map_features
The matcher (template rotation, FFT correlation, softmax) stays in PyTorch on the
same device: FFTs are not portable ONNX operators.
"""

from __future__ import annotations

import warnings

import numpy as np

from geoloc_ros.errors import ConfigError
from geoloc_ros.neuralmap.bundle import NeuralMapBundle, build_net

BEV_ONNX = "bev.onnx"
MAP_ONNX = "map.onnx"


class _Bev:
    def __init__(self, net) -> None:
        import torch  # noqa: PLC0415

        class M(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, image, grid, valid, elevation):
                return self.net.bev(image, grid, valid, elevation)

        self.module = M()


def export_onnx(bundle: NeuralMapBundle) -> list[str]:
    """Write bev.onnx and map.onnx beside the weights; record their hashes in the card."""
    import torch  # noqa: PLC0415

    net = build_net(bundle)
    cfg = bundle.config
    h, w = cfg.input_hw
    nx, ny = cfg.bev_shape
    s = cfg.feat_stride
    args = (torch.zeros(1, 3, h, w, dtype=torch.uint8), torch.zeros(1, nx, ny, 2),
            torch.ones(1, nx, ny), torch.zeros(1, 1, h // s, w // s))  # fmt: skip
    d = bundle.directory
    with warnings.catch_warnings():
        # the TorchScript exporter on purpose: the dynamo one needs onnxscript (notes/ros-env.md)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        names = ["image", "grid", "valid", "elevation"]
        torch.onnx.export(
            _Bev(net).module, args, str(d / BEV_ONNX), input_names=names,
            output_names=["bev_features", "confidence"],
            dynamic_axes={k: {0: "batch"} for k in [*names, "bev_features", "confidence"]},
            opset_version=17, dynamo=False,
        )  # fmt: skip
        torch.onnx.export(
            net.map_encoder, (torch.zeros(1, 3, 64, 64, dtype=torch.uint8),), str(d / MAP_ONNX),
            input_names=["raster"], output_names=["map_features"],
            dynamic_axes={"raster": {0: "batch", 2: "height", 3: "width"},
                          "map_features": {0: "batch", 2: "height", 3: "width"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    for name in (BEV_ONNX, MAP_ONNX):
        bundle.add_file(name)
    return [BEV_ONNX, MAP_ONNX]


def providers_for(backend: str, device: str, cache_dir: str) -> list:
    """onnxruntime execution providers: CPU, CUDA, or TensorRT (FP16, engines cached)."""
    if backend == "tensorrt":
        trt = {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
               "trt_engine_cache_path": cache_dir}  # fmt: skip
        return [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider",
                "CPUExecutionProvider"]  # fmt: skip
    if device.startswith("cuda"):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OrtEncoders:
    """The two encoders in onnxruntime; same call signatures as NeuralMapNet.bev/map_features."""

    def __init__(self, bundle: NeuralMapBundle, providers: list | None = None) -> None:
        try:
            import onnxruntime as ort  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError(f"onnxruntime is not installed: {exc}") from None
        providers = providers or ["CPUExecutionProvider"]
        names = {p[0] if isinstance(p, tuple) else p for p in providers}
        missing = names - set(ort.get_available_providers())
        if missing:
            raise ConfigError(
                f"onnxruntime lacks {', '.join(sorted(missing))} on this machine (available: "
                f"{', '.join(ort.get_available_providers())}); TensorRT needs an NVIDIA GPU "
                "with onnxruntime-gpu and tensorrt installed"
            )
        opts = ort.SessionOptions()
        self.bev_session = ort.InferenceSession(
            str(bundle.path(BEV_ONNX)), opts, providers=providers
        )
        self.map_session = ort.InferenceSession(
            str(bundle.path(MAP_ONNX)), opts, providers=providers
        )
        # the exporter drops inputs a graph does not use (a drone's ray elevation)
        self._bev_inputs = {i.name for i in self.bev_session.get_inputs()}

    def bev(self, image, grid, valid, elevation) -> tuple[np.ndarray, np.ndarray]:
        feeds = {"image": image, "grid": grid, "valid": valid, "elevation": elevation}
        feeds = {k: v for k, v in feeds.items() if k in self._bev_inputs}
        return tuple(self.bev_session.run(None, feeds))

    def map_features(self, raster: np.ndarray) -> np.ndarray:
        return self.map_session.run(None, {"raster": raster})[0]
