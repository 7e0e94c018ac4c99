"""PoseNet latency: one deterministic pass vs MC dropout (backbone once, N head samples).

All variants are timed interleaved in one run, frame by frame, so machine noise hits
them alike; the ratio MC / deterministic is the figure the issue asks for. A naive
MC (N full passes) is timed too, to show what sampling only the head saves.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from geoloc_ros.posenet.bundle import load_bundle
from geoloc_ros.posenet.localizer import PoseNetLocalizer, PoseNetParams, shipped_model_dir
from geoloc_ros.runtime.posenet_backends import make_runner


def _variants(loc: PoseNetLocalizer, image: np.ndarray, n: int):
    from geoloc_ros.posenet.data import prepare_image, to_tensor_batch  # noqa: PLC0415

    cfg = loc.cfg
    r = loc.runner
    one1 = np.ones((1, cfg.feature_dim), np.float32)
    one2 = np.ones((1, cfg.hidden), np.float32)

    def deterministic():
        x = to_tensor_batch(prepare_image(image, cfg.input_hw, cfg.channels)[None]).numpy()
        return r.head(r.features(x), one1, one2)

    def mc():
        return loc.localize(image, 0.0)

    def naive():
        x = to_tensor_batch(prepare_image(image, cfg.input_hw, cfg.channels)[None]).numpy()
        m1, m2 = loc.masks(n)
        return [r.head(r.features(x), m1[i : i + 1], m2[i : i + 1]) for i in range(n)]

    return {"deterministic": deterministic, f"mc{n}": mc, f"naive_mc{n}": naive}


def _stats(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "n": len(a)}  # fmt: skip


def run(model: str, out: Path, frames: int = 200, samples: int = 32, threads: int = 0) -> dict:
    import torch  # noqa: PLC0415

    if threads:
        torch.set_num_threads(threads)
    bundle = load_bundle(model or shipped_model_dir())
    backends = ["torch"]
    if "backbone.onnx" in bundle.files:
        backends.append("onnxruntime")
    rng = np.random.default_rng(0)
    h, w = 240, 320
    images = rng.integers(0, 256, (8, h, w, 3), dtype=np.uint8)
    result = {"benchmark": "posenet", "model": str(model or shipped_model_dir()),
              "samples": samples, "frames": frames, "image": [w, h],
              "input_hw": list(bundle.config.input_hw)}  # fmt: skip
    for backend in backends:
        loc = PoseNetLocalizer(bundle, make_runner(bundle, backend), PoseNetParams(samples=samples))
        fns = _variants(loc, images[0], samples)
        times = {k: [] for k in fns}
        for f in fns.values():  # warm-up
            f()
        for i in range(frames):
            for k, f in fns.items():
                if k.startswith("naive") and i % 10:
                    continue  # 32 full passes: a tenth of the frames is plenty
                t0 = time.perf_counter()
                f()
                times[k].append((time.perf_counter() - t0) * 1e3)
        stats = {k: _stats(v) for k, v in times.items()}
        det = stats["deterministic"]["median_ms"]
        stats["ratio_mc_to_deterministic"] = stats[f"mc{samples}"]["median_ms"] / det
        stats["ratio_naive_to_deterministic"] = stats[f"naive_mc{samples}"]["median_ms"] / det
        result[backend] = stats
    result["machine"] = {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                         "torch_threads": torch.get_num_threads()}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result
