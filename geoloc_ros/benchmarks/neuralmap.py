"""`geoloc bench neuralmap`: recall tables, calibration coverage and CPU latency.

Accuracy follows issue 6's protocol on a dataset of a world never used in training:
prior = truth + N(0, prior_sigma^2) per axis, no yaw prior, `eval_yaw_bins` bins and a
window of `eval_window_m`. Latency is the node's setting: 64 bins, a 64 m window,
split into encoder, lifting, map read and matching, and again with a +-15 deg yaw
prior. Maps are built on first use under `maps_dir` (one per world and model).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from geoloc_ros.neuralmap.bundle import load_bundle
from geoloc_ros.neuralmap.evaluate import Runs, fit_calibration, run_samples, summary
from geoloc_ros.neuralmap.height import height_factors
from geoloc_ros.neuralmap.localizer import MapLocalizer, MapLocalizerParams, shipped_model_dir


def map_for(dataset: Path, model_dir: Path, maps_dir: Path, progress: bool) -> Path:
    """The neural map of a dataset's world encoded by this model, built if missing."""
    from geoloc_ros.neuralmap.data import world_dir  # noqa: PLC0415
    from geoloc_ros.neuralmap.tiles import MAP_CARD, build_map  # noqa: PLC0415

    meta = json.loads((dataset / "dataset.json").read_text())
    wdir = world_dir(dataset, meta)
    sha = load_bundle(model_dir).weights_sha256
    d = maps_dir / f"{wdir.name}_{meta['world']['layout_sha256'][:8]}_{sha[:8]}"
    if not (d / MAP_CARD).is_file():
        build_map(d, model_dir, world=wdir, progress=progress)
    return d


def _samples(dataset: Path, split: str, cfg, limit: int, seed: int):
    from geoloc_ros.neuralmap.data import SimData  # noqa: PLC0415
    from geoloc_ros.sim.dataset import SPLITS  # noqa: PLC0415

    splits = SPLITS if split == "all" else (split,)
    samples = []
    for s in splits:
        try:
            samples += SimData([dataset], s, cfg).samples
        except Exception:
            if split != "all":
                raise
    if limit and len(samples) > limit:
        idx = np.sort(np.random.default_rng(seed).permutation(len(samples))[:limit])
        samples = [samples[i] for i in idx]
    return samples


def run(model: str, data: list[str], out: Path, split: str = "test", frames: int = 300,
        latency_frames: int = 30, prior_sigma_m: float = 20.0, eval_window_m: float = 128.0,
        eval_yaw_bins: int = 256, seed: int = 0, threads: int = 0, calibrate: bool = False,
        maps_dir: Path = Path("out/maps"), parity_frames: int = 0,
        progress: bool = True) -> dict:  # fmt: skip
    import torch  # noqa: PLC0415

    if threads:
        torch.set_num_threads(threads)
    model_dir = Path(model) if model else None
    bundle = load_bundle(model_dir or shipped_model_dir("car"))
    model_dir = bundle.directory
    cfg = bundle.config
    node = node_matcher_settings(cfg.platform)
    result = {
        "model": _display_path(model_dir), "model_sha256": bundle.weights_sha256,
        "platform": cfg.platform, "res_m": cfg.res_m,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "torch_threads": torch.get_num_threads()},
        "protocol": {"prior_sigma_m": prior_sigma_m, "window_m": eval_window_m,
                     "yaw_bins": eval_yaw_bins, "yaw_prior": None, "split": split, "seed": seed,
                     **node},
        "datasets": {},
    }  # fmt: skip
    all_runs = []
    for ds in map(Path, data):
        mdir = map_for(ds, model_dir, maps_dir, progress)
        params = MapLocalizerParams(model=str(model_dir), map=str(mdir), platform=cfg.platform,
                                    yaw_bins=eval_yaw_bins, window_m=eval_window_m,
                                    **node)  # fmt: skip
        loc = MapLocalizer(params)
        samples = _samples(ds, split, cfg, frames, seed)
        t0 = time.monotonic()
        runs = run_samples(loc, samples, prior_sigma_m, seed, progress=progress)
        all_runs.append(runs)
        result["datasets"][str(ds)] = {"map": str(mdir), "seconds": time.monotonic() - t0,
                                       "raw": runs}  # fmt: skip
        if latency_frames > 0:
            lat = _latency(params, samples[:latency_frames], seed)
            result["datasets"][str(ds)]["latency"] = lat
        if parity_frames:
            result["datasets"][str(ds)]["onnx_parity"] = onnx_parity(
                params, samples[:parity_frames], prior_sigma_m, seed
            )
    if calibrate:
        merged = Runs.concatenate(all_runs)
        bundle.calibration = fit_calibration(merged, bundle.calibration)
        bundle.metrics["calibration"] = {
            "data": data,
            "split": split,
            "frames": len(merged.err_yaw_rad),
        }
        bundle.write_card()
        result["calibration_written"] = bundle.calibration.to_dict()
    frames = {}
    for name, v in result["datasets"].items():
        runs = v.pop("raw")
        v["accuracy"] = summary(runs, bundle.calibration)
        frames.update({f"{Path(name).name}/{k}": a for k, a in runs.per_frame().items()})
    if len(all_runs) > 1:
        result["all"] = summary(Runs.concatenate(all_runs), bundle.calibration)
    out.parent.mkdir(parents=True, exist_ok=True)
    result["per_frame"] = str(out.with_suffix(".npz"))  # every frame's errors, for analysis
    np.savez_compressed(out.with_suffix(".npz"), **frames)
    out.write_text(json.dumps(result, indent=1))
    return result


def node_matcher_settings(platform: str) -> dict:
    """The multi-modal threshold and yaw refinement map_localizer_node uses on this
    platform (config/<platform>.yaml): the bench scores what the node would publish."""
    from geoloc_ros.config import load_node_config, platform_config  # noqa: PLC0415
    from geoloc_ros.neuralmap.inputs import MapLocalizerConfig  # noqa: PLC0415

    c = load_node_config(MapLocalizerConfig, platform_config(platform), "map_localizer_node")
    return {"multimodal_ratio": c.multimodal_ratio,
            "yaw_refine_spacing_deg": c.yaw_refine_spacing_deg}  # fmt: skip


def _display_path(path: Path) -> str:
    """A path as the reader typed it: relative to the working directory when under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# drone: the height's sigma as a share of it, for the node's search over 3 heights (GNSS
# vertical sigma at 60-120 m) and its widest, 9 (the inertial height after an outage),
# without and with a yaw prior (in the loop the fused yaw usually gives one)
HEIGHT_SEARCH_CASES = (("height_search_3", None, 0.025), ("height_search_9", None, 0.10),
                       ("height_search_9_yaw_prior_15deg", 3.0, 0.10))  # fmt: skip


def _latency(params: MapLocalizerParams, samples, seed: int) -> dict:
    """Node setting (64 m window): 64 bins over 360 deg without a yaw prior, then the
    `yaw_prior_bins` grid within +-15 deg of a yaw prior; for a drone also without a
    yaw prior while searching 3 and 9 heights, and 9 with the yaw prior."""
    loc = MapLocalizer(replace(params, yaw_bins=64, window_m=64.0))
    cases = [("no_yaw_prior", None, 0.0), ("yaw_prior_15deg", 3.0, 0.0)]
    if params.platform == "drone":
        cases += list(HEIGHT_SEARCH_CASES)
    out = {}
    for name, yaw_sigma, height_frac in cases:
        runs = run_samples(loc, samples, 5.0, seed, yaw_sigma, progress=False,
                           height_sigma_fraction=height_frac)  # fmt: skip
        t = runs.timing_ms[1:] or runs.timing_ms  # the first frame builds caches
        out[name] = {k: float(np.median([x[k] for x in t])) for k in t[0]}
        out[name]["p95_total"] = float(np.percentile([x["total"] for x in t], 95))
        out[name]["frames"] = len(t)
        out[name]["yaw_bins_searched"] = loc.yaw_hypotheses_rad(
            None if yaw_sigma is None else 0.0).size  # fmt: skip
        out[name]["heights_searched"] = height_factors(
            100.0, 100.0 * height_frac, params.height_search_step,
            params.height_search_max_steps).size if height_frac else 1  # fmt: skip
    return out


def onnx_parity(params: MapLocalizerParams, samples, prior_sigma_m: float, seed: int) -> dict:
    """ONNX (onnxruntime CPU) against PyTorch on the same frames and priors: the largest
    feature differences of both encoders, the share of identical volume argmaxes, and the
    node-setting latency of each (exported into a temporary copy of the model)."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    import rasterio  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from rasterio.windows import Window  # noqa: PLC0415

    from geoloc_ros.neuralmap.data import load_rgb  # noqa: PLC0415
    from geoloc_ros.neuralmap.frame import prepare_frame  # noqa: PLC0415
    from geoloc_ros.neuralmap.tiles import ORTHO  # noqa: PLC0415
    from geoloc_ros.runtime.neuralmap_backends import export_onnx  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "model"
        shutil.copytree(params.model, copy)
        export_onnx(load_bundle(copy))
        locs = {b: MapLocalizer(replace(params, model=str(copy), backend=b))
                for b in ("torch", "onnxruntime")}  # fmt: skip
        net, ort = locs["torch"].net, locs["onnxruntime"].ort
        cfg = locs["torch"].cfg
        d_feat = d_conf = 0.0
        same, timing = [], {b: [] for b in locs}
        rng = np.random.default_rng(seed)
        for s in samples:
            rgb = load_rgb(s.image_path)
            fr = prepare_frame(rgb, s.K, cfg, s.roll_pitch_yaw[:2], s.T_base_cam,
                               s.height_above_ground_m)  # fmt: skip
            with torch.inference_mode():
                f_t, c_t = net.bev(*(torch.from_numpy(a[None]) for a in
                                     (fr.image, fr.grid, fr.valid, fr.elevation)))  # fmt: skip
            f_o, c_o = ort.bev(fr.image[None], fr.grid[None], fr.valid[None], fr.elevation[None])
            d_feat = max(d_feat, float(np.abs(f_t.numpy() - f_o).max()))
            d_conf = max(d_conf, float(np.abs(c_t.numpy() - c_o).max()))
            prior = s.xy_m + rng.normal(0.0, prior_sigma_m, 2)
            fixes = {}
            for b, loc in locs.items():
                try:
                    fixes[b] = loc.localize(rgb, s.K, s.roll_pitch_yaw[:2],
                                            s.T_base_cam, prior, prior_sigma_m, None,
                                            s.height_above_ground_m)  # fmt: skip
                    timing[b].append(fixes[b].timing_ms["total"])
                except Exception:  # off the map: both refuse alike
                    fixes[b] = None
            if fixes["torch"] is not None and fixes["onnxruntime"] is not None:
                same.append(fixes["torch"].peak_index == fixes["onnxruntime"].peak_index)
        with rasterio.open(Path(params.map) / ORTHO) as f:
            n = min(256, f.width, f.height) // 4 * 4
            crop = f.read(window=Window(0, 0, n, n))[None]
        with torch.inference_mode():
            m_t = net.map_features(torch.from_numpy(crop)).numpy()
        d_map = float(np.abs(m_t - ort.map_features(crop)).max())
    return {
        "frames": len(same),
        "max_abs_diff_bev_features": d_feat,
        "max_abs_diff_confidence": d_conf,
        "max_abs_diff_map_features": d_map,
        "argmax_identical": float(np.mean(same)) if same else None,
        "total_ms_median": {b: float(np.median(v[1:] or v)) for b, v in timing.items() if v},
    }
