"""Neural map localizer: geometry, matcher, map grid, map folders, model cards, ONNX parity.

Accuracy is measured by `geoloc bench neuralmap`, not here; these tests check that
each piece computes what it claims (poses recovered from maps built to match,
georeferencing to the millimetre, refusals with reasons).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geoloc_ros.errors import ConfigError, InputRejected
from geoloc_ros.geo.quaternion import matrix_from_xyzw, xyzw_from_rpy
from geoloc_ros.geo.wgs84 import LocalTangentPlane
from geoloc_ros.neuralmap.bundle import (
    Calibration,
    NeuralMapBundle,
    build_net,
    load_bundle,
    state_of,
)
from geoloc_ros.neuralmap.config import NeuralMapConfig
from geoloc_ros.neuralmap.data import rpy_from_matrix
from geoloc_ros.neuralmap.evaluate import CHI2_95_2DOF
from geoloc_ros.neuralmap.geometry import (
    CameraGeometry,
    ortho_grid,
    roll_pitch_from_gravity,
    template_grids,
)
from geoloc_ros.neuralmap.localizer import MapLocalizerParams
from geoloc_ros.neuralmap.matcher import TemplateRotator, correlate, log_volume, refine
from geoloc_ros.neuralmap.model import NeuralMapNet
from geoloc_ros.neuralmap.raster import MapRaster, map_crs, resample_to_map

DATUM = (47.3769, 8.5417, 408.0)


@pytest.fixture(scope="module")
def car_bundle(tmp_path_factory):
    torch.manual_seed(0)
    cfg = NeuralMapConfig.for_platform("car")
    return NeuralMapBundle(cfg, state_of(NeuralMapNet(cfg))).save(tmp_path_factory.mktemp("m"))


@pytest.mark.parametrize("roll,pitch", [(0.0, 0.0), (0.1, -0.2), (-0.3, 0.25)])
def test_roll_and_pitch_come_back_from_gravity(roll, pitch):
    R_world_base = matrix_from_xyzw(xyzw_from_rpy(roll, pitch, 1.3))
    g_base = R_world_base.T @ np.array([0.0, 0.0, -9.81])
    assert np.allclose(roll_pitch_from_gravity(g_base), (roll, pitch), atol=1e-9)
    r, p, y = rpy_from_matrix(R_world_base)
    assert np.allclose((r, p, y), (roll, pitch, 1.3), atol=1e-9)
    with pytest.raises(InputRejected):
        roll_pitch_from_gravity(np.array([np.nan, 0.0, -9.8]))


def test_template_rotation_puts_the_heading_where_the_yaw_says():
    cfg = NeuralMapConfig.for_platform("car")
    nx, ny = cfg.bev_shape
    bev = torch.zeros(1, 1, nx, ny)
    ix = int(10.0 / cfg.res_m)  # a cell 10 m ahead, on the centre line
    iy = int((0.0 - cfg.bev_origin_m[1]) / cfg.res_m)
    bev[0, 0, ix, iy] = 1.0
    h = cfg.template_size // 2
    for yaw_deg, (drow, dcol) in ((0, (0, 10)), (90, (-10, 0)), (180, (0, -10))):
        rot = TemplateRotator(cfg, 1, np.radians([yaw_deg]))
        t = rot(bev, torch.ones(1, 1, nx, ny))[0, 0, 0]
        r, c = np.unravel_index(int(t.argmax()), t.shape)
        want = (h + drow / cfg.res_m, h + dcol / cfg.res_m)
        assert abs(r - want[0]) <= 1 and abs(c - want[1]) <= 1, (yaw_deg, r, c, want)


def test_a_yaw_prior_searches_finer_bins_sliced_from_one_set_of_grids(tmp_path, car_bundle):
    """With a yaw prior the search covers +-yaw_prior_deg at yaw_prior_bins spacing, and
    its templates are those of a rotator made for exactly those yaws."""
    from geoloc_ros.neuralmap.localizer import MapLocalizer
    from geoloc_ros.neuralmap.tiles import build_map

    build_map(tmp_path / "map", car_bundle, ortho=_utm_geotiff(tmp_path / "o.tif"),
              datum=DATUM, progress=False)  # fmt: skip
    params = MapLocalizerParams(model=str(car_bundle), map=str(tmp_path / "map"), yaw_bins=16,
                                yaw_prior_bins=128, yaw_prior_deg=10.0)  # fmt: skip
    loc = MapLocalizer(params)
    cfg = loc.cfg
    assert len(loc.yaw_hypotheses_rad(None)) == 16
    assert np.array_equal(loc.yaw_hypotheses_rad(0.3), loc._rotator(0.3).yaws_rad)
    rot = loc._rotator(np.radians(-170.0))
    step = 2 * np.pi / 128
    d = np.angle(np.exp(1j * (rot.yaws_rad - np.radians(-170.0))))
    assert np.allclose(np.diff(np.unwrap(rot.yaws_rad)), step)
    assert np.abs(d).max() <= np.radians(10.0) + step and np.abs(d).max() >= np.radians(10.0)
    fresh = TemplateRotator(cfg, 128, rot.yaws_rad)
    nx, ny = cfg.bev_shape
    bev = torch.rand(1, 8, nx, ny, generator=torch.Generator().manual_seed(0))
    conf = torch.ones(1, 1, nx, ny)
    assert torch.allclose(rot(bev, conf), fresh(bev, conf), atol=1e-6)
    assert set(loc._full) == {16, 128}  # one grid set per bin count, none per range


def _smooth_map(rng, m: int, size: int) -> np.ndarray:
    import cv2

    noise = rng.normal(size=(size, size, m)).astype(np.float32)
    f = cv2.GaussianBlur(noise, (0, 0), 2.0)
    f = f.reshape(size, size, m).transpose(2, 0, 1)
    return f / np.linalg.norm(f, axis=0, keepdims=True)


@pytest.mark.parametrize("platform", ["car", "drone"])
def test_matcher_recovers_a_pose_whose_bev_was_cut_from_the_map(platform):
    """A BEV sampled from the map at a known sub-cell pose is found there, yaw included."""
    rng = np.random.default_rng(1)
    cfg = NeuralMapConfig.for_platform(platform)
    res, h = cfg.res_m, cfg.template_size // 2
    p = 24
    size = p + 2 * h
    fmap = _smooth_map(rng, cfg.match_channels, size)
    raster = MapRaster(fmap.transpose(1, 2, 0), 0.0, size * res, res)
    true_rc = np.array([h + 9.3, h + 14.6])
    true_xy = raster.xy_of(*true_rc)
    yaw = np.radians(37.0)
    # BEV cell centres in the world, then bilinear samples of the map there
    nx, ny = cfg.bev_shape
    x0, y0 = cfg.bev_origin_m
    xb, yb = np.meshgrid(x0 + (np.arange(nx) + 0.5) * res, y0 + (np.arange(ny) + 0.5) * res,
                         indexing="ij")  # fmt: skip
    wx = true_xy[0] + np.cos(yaw) * xb - np.sin(yaw) * yb
    wy = true_xy[1] + np.sin(yaw) * xb + np.cos(yaw) * yb
    rc = raster.cell_of(np.stack([wx, wy], -1))
    grid = np.stack([(rc[..., 1] + 0.5) / size * 2 - 1, (rc[..., 0] + 0.5) / size * 2 - 1], -1)
    bev = torch.nn.functional.grid_sample(torch.from_numpy(fmap)[None],
                                          torch.from_numpy(grid).float()[None],
                                          align_corners=False)  # fmt: skip
    rot = TemplateRotator(cfg, 128)
    scores = correlate(torch.from_numpy(fmap)[None], rot(bev, torch.ones(1, 1, nx, ny)))
    assert scores.shape == (1, 128, p, p)
    lv = log_volume(scores, torch.tensor(np.log(200.0)))[0].numpy()
    m = refine(lv, rot.yaws_rad, h, res)
    assert np.hypot(m.row - true_rc[0], m.col - true_rc[1]) < 0.35
    assert abs(np.degrees(m.yaw_rad) - 37.0) < 1.5
    assert not m.multimodal
    assert m.cov_xy_m2.shape == (2, 2) and np.all(np.linalg.eigvalsh(m.cov_xy_m2) >= 0)


def test_yaw_is_refined_through_the_marginal_shape_not_its_bin_to_bin_ripple():
    """A Gaussian yaw marginal (3 deg sigma, 256 bins) with seeded log-ripple, as the
    rotated templates give: the estimate stays within a fraction of a degree (a parabola
    through adjacent bins was off by 0.63 deg on average, 1.75 at worst, here)."""
    k = 256
    step = 2 * np.pi / k
    yaws = np.arange(k) * step
    centre, sigma = 40.3 * step, np.radians(3.0)
    d = np.angle(np.exp(1j * (yaws - centre)))
    errs, variances = [], []
    for seed in range(20):
        lv = np.full((k, 21, 21), -80.0)
        lv[:, 10, 10] = -0.5 * (d / sigma) ** 2 + np.random.default_rng(seed).normal(0, 0.15, k)
        m = refine(lv, yaws, 5, 1.0)
        errs.append(abs(np.degrees(m.yaw_rad - centre)))
        variances.append(m.var_yaw_rad2)
    assert np.mean(errs) < 0.35 and max(errs) < 1.0
    assert np.sqrt(np.mean(variances)) == pytest.approx(sigma, rel=0.2)


def test_the_yaw_is_refined_through_bins_the_given_spacing_apart():
    """`yaw_spacing_rad` picks the bins the parabola goes through: on a marginal whose
    shape differs near the peak and further out, one bin and three bins apart give the
    vertices of those two parabolas (the drone's sharp marginal takes 2.8 deg, the car
    4 deg: config/<platform>.yaml)."""
    from geoloc_ros.neuralmap.matcher import _parabola_peak

    k = 256
    step = 2 * np.pi / k
    yaws = np.arange(k) * step
    ly = np.full(k, -40.0)
    ly[40], ly[39], ly[41], ly[37], ly[43] = 0.0, -1.0, -0.5, -6.0, -3.0
    lv = np.full((k, 21, 21), -200.0)
    lv[:, 10, 10] = ly
    for bins in (1, 3):
        m = refine(lv, yaws, 5, 1.0, yaw_spacing_rad=bins * step)
        p = np.exp(ly - ly.max())
        lp = np.log(p / p.sum())
        want = (40 + bins * _parabola_peak(lp[40 - bins], lp[40], lp[40 + bins])) * step
        assert m.yaw_rad == pytest.approx(want, abs=1e-9)
    assert refine(lv, yaws, 5, 1.0, yaw_spacing_rad=step).yaw_rad != pytest.approx(
        refine(lv, yaws, 5, 1.0, yaw_spacing_rad=3 * step).yaw_rad, abs=1e-4
    )
    with pytest.raises(ConfigError, match="yaw_refine_spacing_deg"):
        MapLocalizerParams(yaw_refine_spacing_deg=0.0)


def test_two_equal_peaks_are_flagged_multimodal():
    lv = np.full((8, 40, 40), -50.0)
    lv[0, 5, 5] = lv[0, 30, 30] = 0.0
    m = refine(lv, np.linspace(0, 2 * np.pi, 8, endpoint=False), 10, 1.0)
    assert m.multimodal and m.second_peak_ratio > 0.9
    # a second peak a quarter as high is a second mode at the node's 0.2, not at 0.5
    lv[0, 30, 30] = np.log(0.25)
    yaws = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    assert refine(lv, yaws, 10, 1.0, multimodal_ratio=0.2).multimodal
    assert not refine(lv, yaws, 10, 1.0, multimodal_ratio=0.5).multimodal
    with pytest.raises(ConfigError, match="multimodal_ratio"):
        MapLocalizerParams(multimodal_ratio=0.0)


def test_a_multimodal_fix_carries_the_spread_between_its_hypotheses():
    """Two peaks 24 m apart along x: the mode's own moments are tight, the whole
    window's about the mode put the other peak inside the 95 % region; a unimodal fix
    keeps its calibrated mode moments."""
    yaws = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lv = np.full((8, 41, 41), -60.0)
    lv[0, 20, 8] = 0.0
    lv[0, 20, 32] = np.log(0.8)
    m = refine(lv, yaws, 10, 1.0)
    assert m.multimodal and m.mode_mass == pytest.approx(1 / 1.8, rel=1e-3)
    assert m.cov_xy_m2[0, 0] < 0.1
    assert m.cov_xy_volume_m2[0, 0] == pytest.approx(0.8 / 1.8 * 24**2, rel=1e-3)
    assert abs(m.cov_xy_volume_m2[0, 1]) < 1e-6 and m.cov_xy_volume_m2[1, 1] < 1e-6
    cal = Calibration(0.2, 0.3, 0.25, 0.5)
    raw = np.diag([m.cov_xy_m2[0, 0], m.cov_xy_m2[1, 1], m.var_yaw_rad2])
    carried = cal.carried(raw[None], m.cov_xy_volume_m2[None], [True])[0]
    other_peak = np.array([24.0, 0.0])  # x grows with columns
    assert other_peak @ np.linalg.solve(carried[:2, :2], other_peak) < CHI2_95_2DOF
    assert carried[2, 2] == pytest.approx(cal.apply(raw)[2, 2])  # yaw: the mode's
    assert np.allclose(cal.carried(raw[None], m.cov_xy_volume_m2[None], [False])[0],
                       cal.apply(raw))  # fmt: skip
    # rows grow southwards: peaks to the north-west and south-east, negative x-y covariance
    lv2 = np.full((8, 41, 41), -60.0)
    lv2[0, 10, 10] = 0.0
    lv2[0, 30, 30] = 0.0
    v = refine(lv2, yaws, 10, 1.0).cov_xy_volume_m2
    assert v[0, 1] < 0 and v[0, 0] == pytest.approx(v[1, 1])


def test_the_map_grid_is_local_enu_to_the_millimetre():
    from pyproj import Transformer

    ltp = LocalTangentPlane(*DATUM)
    to_geo = Transformer.from_crs(map_crs(DATUM), "EPSG:4326", always_xy=True)
    for xy in [(1000.0, 0.0), (-2000.0, 1500.0), (300.0, -2500.0)]:
        lon, lat = to_geo.transform(*xy)
        enu = ltp.enu_from_geodetic(lat, lon, DATUM[2])
        assert np.allclose(enu[:2], xy, atol=1e-3)


def _utm_geotiff(path, centre_enu=(12.0, -20.0), half_m=60.0):
    """An RGB GeoTIFF in UTM 32N, grey with a white 8 m square centred at `centre_enu`."""
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    ltp = LocalTangentPlane(*DATUM)
    lat, lon, _ = ltp.geodetic_from_enu(np.array([[0.0, 0.0, 0.0]]))
    e0, n0 = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True).transform(
        float(lon[0]), float(lat[0])
    )
    gsd = 0.25
    n = int(2 * half_m / gsd)
    img = np.full((3, n, n), 90, np.uint8)
    # UTM grid is rotated from ENU by < 1 deg here: place the square by its ENU corners
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32632", always_xy=True)
    for dx in np.arange(-4, 4, 0.1):
        for dy in np.arange(-4, 4, 0.1):
            la, lo, _ = ltp.geodetic_from_enu(
                np.array([[centre_enu[0] + dx, centre_enu[1] + dy, 0]])
            )
            e, nn = to_utm.transform(float(lo[0]), float(la[0]))
            c = int((e - (e0 - half_m)) / gsd)
            r = int(((n0 + half_m) - nn) / gsd)
            if 0 <= r < n and 0 <= c < n:
                img[:, r, c] = 255
    origin = from_origin(e0 - half_m, n0 + half_m, gsd, gsd)
    prof = {"driver": "GTiff", "width": n, "height": n, "count": 3, "dtype": "uint8",
            "crs": "EPSG:32632", "transform": origin}  # fmt: skip
    with rasterio.open(path, "w", **prof) as f:
        f.write(img)
    return path


def test_an_orthophoto_lands_on_the_map_grid_where_it_belongs(tmp_path):
    src = _utm_geotiff(tmp_path / "ortho.tif")
    r = resample_to_map(src, DATUM, 1.0, (-50.0, -50.0, 50.0, 50.0))
    assert r.data.shape == (100, 100, 3)
    bright = r.data[..., 0] > 170
    rows, cols = np.nonzero(bright)
    xy = r.xy_of(rows.mean(), cols.mean())
    assert np.allclose(xy, (12.0, -20.0), atol=0.5)
    with pytest.raises(ConfigError, match="not found"):
        resample_to_map(tmp_path / "missing.tif", DATUM, 1.0)


def test_map_build_from_a_user_orthophoto_and_windowed_reads(tmp_path, car_bundle):
    from geoloc_ros.neuralmap.tiles import FEATURES, MapStore, build_map

    src = _utm_geotiff(tmp_path / "ortho.tif")
    card = build_map(tmp_path / "map", car_bundle, ortho=src, datum=DATUM, progress=False)
    assert card["res_m"] == 1.0 and card["channels"] == 8 and card["width"] >= 100
    store = MapStore(tmp_path / "map", load_bundle(car_bundle).weights_sha256)
    assert store.contains(np.array([0.0, 0.0])) and not store.contains(np.array([500.0, 0.0]))
    win = store.window(-10, -10, 40)
    assert win.shape == (8, 40, 40)
    assert np.all(win[:, :10, :10] == 0)  # outside the map
    norms = np.linalg.norm(win[:, 20:, 20:], axis=0)
    assert np.allclose(norms, 1.0, atol=1e-4)  # unit features inside
    h, w = card["height"], card["width"]
    import rasterio

    with rasterio.open(tmp_path / "map" / FEATURES) as f:
        full = f.read()
    assert np.array_equal(store.window(-10, -10, 40)[:, 10:, 10:], full[:, :30, :30])
    far = store.window(h - 5, w - 7, 20)  # past the south-east corner
    assert np.array_equal(far[:, :5, :7], full[:, h - 5 :, w - 7 :])
    assert np.all(far[:, 5:] == 0) and np.all(far[:, :, 7:] == 0)
    assert not np.any(store.window(h + 3, 0, 8))  # wholly outside: zeros, no error
    with pytest.raises(ConfigError, match="encoded by model"):
        MapStore(tmp_path / "map", "0" * 64)
    with (tmp_path / "map" / FEATURES).open("r+b") as f:
        f.seek(2000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ConfigError, match="sha256"):
        MapStore(tmp_path / "map")


def test_model_cards_refuse_tampering_and_unknown_keys(tmp_path, car_bundle):
    b = load_bundle(car_bundle)
    net = build_net(b)
    assert isinstance(net, NeuralMapNet)
    card = json.loads((car_bundle / "neuralmap.json").read_text())
    card["config"]["wings"] = 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "neuralmap.json").write_text(json.dumps(card))
    (bad / "neuralmap.safetensors").write_bytes((car_bundle / "neuralmap.safetensors").read_bytes())
    with pytest.raises(ConfigError, match="unknown neural map config keys"):
        load_bundle(bad)
    card["config"].pop("wings")
    (bad / "neuralmap.json").write_text(json.dumps(card))
    (bad / "neuralmap.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ConfigError, match="sha256"):
        load_bundle(bad)
    with pytest.raises(ConfigError, match="platform"):
        NeuralMapConfig(platform="boat")


def test_ortho_grid_projects_ground_points_to_their_pixels():
    cfg = NeuralMapConfig.for_platform("drone")
    K = np.array([[208.5, 0, 159.5], [0, 208.5, 119.5], [0, 0, 1.0]])
    from geoloc_ros.sim.camera import DRONE_NADIR_MOUNT

    T_bc = DRONE_NADIR_MOUNT.T_base_cam
    cam = CameraGeometry.create(K, (320, 240), cfg, (0.05, -0.03), T_bc)
    grid, valid = ortho_grid(cfg, cam, 80.0)
    assert valid.mean() > 0.9  # a 48 m square fits a 75 deg view from 80 m
    # a ground point straight below base_link projects near the image centre
    nx, ny = cfg.bev_shape
    g = grid[nx // 2, ny // 2]
    assert np.all(np.abs(g) < 0.1)
    with pytest.raises(InputRejected, match="height"):
        ortho_grid(cfg, cam, float("nan"))
    assert template_grids(cfg, np.zeros(2)).shape[0] == 2


def test_onnx_encoders_match_pytorch(tmp_path, car_bundle):
    pytest.importorskip("onnxruntime")
    from geoloc_ros.runtime.neuralmap_backends import OrtEncoders, export_onnx

    work = tmp_path / "model"
    work.mkdir()
    for f in car_bundle.iterdir():
        (work / f.name).write_bytes(f.read_bytes())
    b = load_bundle(work)
    export_onnx(b)
    ort = OrtEncoders(load_bundle(work))
    net = build_net(b)
    cfg = b.config
    rng = np.random.default_rng(0)
    h, w = cfg.input_hw
    nx, ny = cfg.bev_shape
    img = rng.integers(0, 255, (2, 3, h, w), dtype=np.uint8)
    grid = rng.uniform(-1, 1, (2, nx, ny, 2)).astype(np.float32)
    valid = np.ones((2, nx, ny), np.float32)
    elev = rng.uniform(-0.5, 0.5, (2, 1, h // 2, w // 2)).astype(np.float32)
    f_o, c_o = ort.bev(img, grid, valid, elev)
    with torch.inference_mode():
        f_t, c_t = net.bev(*map(torch.from_numpy, (img, grid, valid, elev)))
        raster = rng.integers(0, 255, (1, 3, 96, 120), dtype=np.uint8)
        m_t = net.map_features(torch.from_numpy(raster)).numpy()
    assert np.abs(f_o - f_t.numpy()).max() <= 1e-3
    assert np.abs(c_o - c_t.numpy()).max() <= 1e-3
    assert np.abs(ort.map_features(raster) - m_t).max() <= 1e-3
    # the localizer on the ONNX graph finds the same volume argmax as on PyTorch
    from geoloc_ros.neuralmap.localizer import MapLocalizer
    from geoloc_ros.neuralmap.tiles import build_map
    from geoloc_ros.sim.camera import CAR_MOUNT

    build_map(tmp_path / "map", work, ortho=_utm_geotiff(tmp_path / "o.tif"), datum=DATUM,
              progress=False)  # fmt: skip
    frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    K = np.array([[160.0, 0, 159.5], [0, 160.0, 119.5], [0, 0, 1]])
    fixes = [
        MapLocalizer(MapLocalizerParams(model=str(work), map=str(tmp_path / "map"), backend=b,
                                        window_m=24.0, yaw_bins=16))
        .localize(frame, K, (0.0, 0.0), CAR_MOUNT.T_base_cam, np.zeros(2), 5.0)
        for b in ("torch", "onnxruntime")
    ]  # fmt: skip
    assert fixes[0].peak_index == fixes[1].peak_index
    assert np.allclose(fixes[0].xy_m, fixes[1].xy_m, atol=1e-3)


@pytest.mark.parametrize("platform", ["car", "drone"])
def test_the_shipped_models_load_checked_and_small(platform):
    from geoloc_ros.neuralmap.localizer import shipped_model_dir

    d = shipped_model_dir(platform)
    b = load_bundle(d)  # verifies the sha256 in the card
    assert b.config.platform == platform
    assert (d / "neuralmap.safetensors").stat().st_size < 30e6
    assert b.calibration.scale_xy > 0 and "command" in b.training
    build_net(b)


def test_tensorrt_backend_without_a_gpu_says_what_is_missing(car_bundle):
    ort = pytest.importorskip("onnxruntime")
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is available here: the device benchmark measures it")
    from geoloc_ros.neuralmap.localizer import MapLocalizer

    with pytest.raises(ConfigError, match=r"lacks .*TensorrtExecutionProvider.*NVIDIA GPU"):
        MapLocalizer(MapLocalizerParams(model=str(car_bundle), map="unused", backend="tensorrt"))
    with pytest.raises(ConfigError, match="backend must be one of"):
        MapLocalizerParams(backend="openvino")


def test_training_crops_put_the_truth_exactly_on_a_cell_and_a_yaw_bin():
    from geoloc_ros.neuralmap.data import aligned_crop
    from geoloc_ros.neuralmap.raster import MapRaster

    n = 200  # a raster whose cells hold their own ENU centre: the crop shows where it samples
    grid = MapRaster(np.zeros((n, n, 3), np.float32), -100.0, 100.0, 1.0)
    rows, cols = np.mgrid[0:n, 0:n]
    grid.data[..., :2] = grid.xy_of(rows, cols)
    bins, delta = 32, np.radians(3.0)
    yaw = 5 * 2 * np.pi / bins + delta  # 3 deg past the centre of bin 5
    xy = np.array([3.3, -7.6])
    crop, k = aligned_crop(grid, grid.cell_of(xy), yaw, bins, (40, 30), 90)
    assert k == 5 and crop.shape == (90, 90, 3)
    np.testing.assert_allclose(crop[40, 30, :2], xy, atol=1e-3)  # the vehicle, on cell (40, 30)
    # 10 cells east in the crop is 10 m along the true heading's bin centre rotated back
    v = crop[40, 40, :2] - xy
    np.testing.assert_allclose(v, 10 * np.array([np.cos(delta), np.sin(delta)]), atol=1e-3)
    v = crop[30, 30, :2] - xy  # 10 cells up (north) in the crop
    np.testing.assert_allclose(v, 10 * np.array([-np.sin(delta), np.cos(delta)]), atol=1e-3)


def test_dividing_out_the_prior_recovers_the_image_evidence_or_withholds_the_fix():
    """A posterior that is the product of a Gaussian image likelihood and the prior gives
    that likelihood back; a direction the prior dominates is left free, and a fix it
    dominates in both gives only its yaw, or nothing."""
    from geoloc_ros.neuralmap.localizer import MapFix, divide_out_prior

    cal = Calibration(scale_xy=1.5, floor_xy_m=0.25)
    lik_xy, lik_cov = np.array([10.0, -4.0]), np.array([[1.0, 0.3], [0.3, 2.0]])
    prior_xy, sigma = np.array([12.0, -1.0]), 3.0
    info = np.linalg.inv(lik_cov) + np.eye(2) / sigma**2
    post_cov = np.linalg.inv(info)
    post_xy = post_cov @ (np.linalg.inv(lik_cov) @ lik_xy + prior_xy / sigma**2)
    raw = np.zeros((3, 3))
    raw[:2, :2], raw[2, 2] = post_cov, 0.01
    fix = MapFix(post_xy, 0.2, cal.apply(raw), raw, False, 0.0)
    out = divide_out_prior(fix, prior_xy, sigma, cal)
    np.testing.assert_allclose(out.xy_m, lik_xy, atol=1e-9)
    np.testing.assert_allclose(out.cov_raw_xyyaw[:2, :2], lik_cov, atol=1e-9)
    assert out.cov_xyyaw[0, 0] == pytest.approx(1.5 * 1.0 + 0.25**2)
    assert out.cov_raw_xyyaw[2, 2] == 0.01  # yaw untouched
    # a posterior hardly tighter than the prior: the image said (almost) nothing
    raw2 = raw.copy()
    raw2[:2, :2] = np.eye(2) * (0.9 * sigma**2)
    assert divide_out_prior(MapFix(prior_xy, 0.2, cal.apply(raw2), raw2, False, 0.0),
                            prior_xy, sigma, cal) is None  # fmt: skip
    # ... but a yaw it is sure of is still news: published with x and y left free
    yaw_only = divide_out_prior(MapFix(prior_xy, 0.2, cal.apply(raw2), raw2, False, 0.0),
                                prior_xy, sigma, cal, max_yaw_only_sigma_rad=0.2)  # fmt: skip
    assert np.linalg.eigvalsh(yaw_only.cov_xyyaw[:2, :2])[0] > 1e5
    assert yaw_only.yaw_rad == 0.2 and yaw_only.cov_raw_xyyaw[2, 2] == 0.01
    # a street: the image knows the cross-street offset (y, 0.3 m) but not how far along
    # it is (x); y comes back, x is left free
    lik_cov, lik_xy = np.diag([1e4, 0.09]), np.array([50.0, -2.0])
    info = np.linalg.inv(lik_cov) + np.eye(2) / sigma**2
    post_cov = np.linalg.inv(info)
    post_xy = post_cov @ (np.linalg.inv(lik_cov) @ lik_xy + prior_xy / sigma**2)
    raw3 = raw.copy()
    raw3[:2, :2] = post_cov
    street = divide_out_prior(MapFix(post_xy, 0.2, cal.apply(raw3), raw3, False, 0.0),
                              prior_xy, sigma, cal)  # fmt: skip
    assert street.xy_m[1] == pytest.approx(-2.0, abs=1e-6)
    assert street.xy_m[0] == pytest.approx(post_xy[0])  # no information: not extrapolated
    assert street.cov_raw_xyyaw[1, 1] == pytest.approx(0.09)
    assert street.cov_raw_xyyaw[0, 0] == pytest.approx(1e6)


def test_calibration_fits_the_mode_and_leaves_gross_failures_to_the_gate():
    """Fixes whose errors follow 3x their volume's covariance, plus 30 % gross failures
    (another place, or flagged multi-modal): the fitted scales are the inliers' (9 on both
    variances), not the ones that would cover the failures too."""
    from geoloc_ros.errors import InputRejected
    from geoloc_ros.neuralmap.bundle import Calibration
    from geoloc_ros.neuralmap.evaluate import Runs, fit_calibration, summary

    rng = np.random.default_rng(0)
    n = 2000
    sig_xy, sig_yaw = rng.uniform(0.3, 1.0, n), np.radians(rng.uniform(0.2, 1.0, n))
    cov = np.zeros((n, 3, 3))
    cov[:, 0, 0] = cov[:, 1, 1] = sig_xy**2
    cov[:, 2, 2] = sig_yaw**2
    err_xy = rng.normal(size=(n, 2)) * 3 * sig_xy[:, None]
    err_yaw = rng.normal(size=n) * 3 * sig_yaw
    gross = rng.random(n) < 0.3
    err_xy[gross] = rng.uniform(15, 60, (gross.sum(), 1)) * [[0.6, 0.8]]
    err_yaw[gross] = rng.uniform(-np.pi, np.pi, gross.sum())
    flagged = gross & (rng.random(n) < 0.5)
    runs = Runs(err_xy, err_yaw, cov, flagged, [], 0)
    cal = fit_calibration(runs, Calibration(floor_xy_m=0.0, floor_yaw_deg=0.0))
    assert cal.scale_xy == pytest.approx(9.0, rel=0.1)
    assert cal.scale_yaw == pytest.approx(9.0, rel=0.1)
    s = summary(runs, cal)
    assert s["coverage95_xy_in_mode_support"] == pytest.approx(0.95, abs=0.01)
    assert s["coverage95_yaw_in_mode_support"] == pytest.approx(0.95, abs=0.01)
    assert s["coverage95_xy"] == pytest.approx(0.95 * 0.7, abs=0.03)  # what the fix reports
    assert s["unimodal_gross_failure_share"] == pytest.approx(0.15 / 0.85, abs=0.03)
    # a volume 30x wider than its errors (the drone's): the scale goes below 1/64
    g = ~gross
    tight = Runs(err_xy[g] / 90, err_yaw[g] / 90, cov[g], flagged[g], [], 0)
    small = fit_calibration(tight, Calibration(floor_xy_m=0.0, floor_yaw_deg=0.0))
    assert small.scale_xy == pytest.approx(1 / 900, rel=0.1)
    few = Runs(err_xy[:10], err_yaw[:10], cov[:10], flagged[:10], [], 0)
    with pytest.raises(InputRejected, match="fit needs"):
        fit_calibration(few)


def test_gross_failures_are_split_into_along_the_street_reversed_and_other():
    from geoloc_ros.neuralmap.evaluate import Runs, error_along_across, gross_failure_kinds

    heading = np.radians([90.0, 90.0, 0.0, 45.0, 30.0])  # north, north, east, north-east
    err_xy = np.array([[0.0, -8.0],  # 8 m behind a car heading north: along, yaw right
                       [0.5, 16.0],  # two periods ahead
                       [0.0, 9.0],  # 9 m to the left of a car heading east: across
                       [6.0, 6.0],  # along, but the yaw reversed
                       [0.3, 0.2]])  # fine  # fmt: skip
    err_yaw = np.radians([1.0, -2.0, 0.5, 179.0, 0.1])
    runs = Runs(err_xy, err_yaw, np.tile(np.eye(3), (5, 1, 1)), np.zeros(5, bool), [], 0,
                truth_yaw_rad=heading)  # fmt: skip
    np.testing.assert_allclose(error_along_across(err_xy[:3], heading[:3]),
                               [[-8.0, 0.0], [16.0, -0.5], [0.0, 9.0]], atol=1e-9)  # fmt: skip
    kinds = gross_failure_kinds(runs)
    assert kinds == pytest.approx({"along_heading_yaw_right": 0.4, "yaw_reversed": 0.2,
                                   "other": 0.2})  # fmt: skip
    assert gross_failure_kinds(Runs(err_xy, err_yaw, runs.cov_raw, runs.multimodal, [], 0)) is None


def test_runs_of_several_datasets_concatenate_and_drop_what_one_lacks():
    from geoloc_ros.neuralmap.evaluate import Runs

    def runs(n: int, mass: bool) -> Runs:
        return Runs(np.ones((n, 2)) * n, np.zeros(n), np.tile(np.eye(3), (n, 1, 1)),
                    np.zeros(n, bool), [{"total": float(n)}] * n, rejected=1,
                    mode_mass=np.full(n, 0.9) if mass else None)  # fmt: skip

    both = Runs.concatenate([runs(2, True), runs(3, True)])
    assert both.err_xy_m.shape == (5, 2) and both.err_xy_m[4, 0] == 3.0
    assert both.rejected == 2 and len(both.timing_ms) == 5 and both.mode_mass.shape == (5,)
    assert set(both.per_frame()) == {"err_xy_m", "err_yaw_rad", "cov_raw", "multimodal",
                                     "mode_mass"}  # fmt: skip
    assert Runs.concatenate([runs(2, True), runs(3, False)]).mode_mass is None


def test_the_bench_can_give_a_nadir_height_a_sigma_so_the_node_search_is_timed(tmp_path):
    """run_samples passes the true height with the asked share of it as sigma (0 = none,
    the recall protocol), which is what makes the localizer search heights."""
    import cv2

    from geoloc_ros.neuralmap.data import Sample
    from geoloc_ros.neuralmap.evaluate import run_samples

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    samples = [Sample(tmp_path / "a.png", np.eye(3), np.eye(4), np.array([1.0, 2.0]),
                      (0.0, 0.0, 0.3), h, 0) for h in (80.0, 50.0)]  # fmt: skip

    class Recorder:
        """Records what the bench asks for, then declines the frame (a counted rejection)."""

        def __init__(self) -> None:
            self.asked = []

        def localize(self, rgb, K, roll_pitch, T_base_cam, prior, sigma, yaw_prior, height_m,
                     height_sigma_m=0.0):  # fmt: skip
            self.asked.append((height_m, height_sigma_m))
            raise InputRejected("recorded", reason="test")

    for frac, want in ((0.0, [0.0, 0.0]), (0.1, [8.0, 5.0])):
        rec = Recorder()
        runs = run_samples(rec, samples, 5.0, 0, progress=False, height_sigma_fraction=frac)
        assert runs.rejected == 2 and [h for h, _ in rec.asked] == [80.0, 50.0]
        assert [s for _, s in rec.asked] == pytest.approx(want)


def test_height_factors_cover_the_prior_sigma_in_log_steps_and_stay_off_when_it_is_small():
    from geoloc_ros.neuralmap.height import height_factors

    assert height_factors(100.0, 1.0, 0.05, 4).tolist() == [1.0]  # +-2 %: under half a step
    assert height_factors(100.0, 30.0, 0.0, 4).tolist() == [1.0]  # search off
    f = height_factors(100.0, 6.0, 0.05, 4)  # +-12 %: two steps each way, the prior first
    assert f[0] == 1.0 and len(f) == 5
    assert np.allclose(np.sort(f), 1.05 ** np.arange(-2, 3))
    assert len(height_factors(100.0, 80.0, 0.05, 4)) == 9  # capped at max_steps


def test_refine_height_finds_the_peak_of_a_log_parabola_and_floors_its_variance():
    from geoloc_ros.neuralmap.height import MIN_HEIGHT_SIGMA_FRACTION, refine_height

    f = 1.05 ** np.array([0, -1, 1, -2, 2], dtype=float)
    u = np.log(f)
    u0, s = np.log(1.03), 0.01  # peak 3 % above the prior; curvature of a 1 % sigma
    best, factor, var = refine_height(f, -0.5 * (u - u0) ** 2 / s**2)
    assert f[best] == pytest.approx(1.05) and factor == pytest.approx(1.03, rel=1e-6)
    assert var == pytest.approx(np.log1p(MIN_HEIGHT_SIGMA_FRACTION) ** 2)  # floored
    best, factor, var = refine_height(f, -0.5 * (u - u0) ** 2 / 0.2**2)
    assert var == pytest.approx(0.04, rel=1e-6)  # a flat evidence keeps its own sigma
    best, factor, _ = refine_height(f, -u)  # rising to the edge: the edge, unrefined
    assert factor == pytest.approx(1.05**-2)
    assert refine_height(np.ones(1), np.zeros(1))[1] == 1.0
