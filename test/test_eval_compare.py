"""geoloc eval --compare: runs side by side in one table and one figure; runs in other map
frames and folders that are not reports are refused with one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoloc_ros.cli import main
from geoloc_ros.errors import GeolocError
from geoloc_ros.eval.compare import compare_runs
from geoloc_ros.eval.trajectory import Trajectory


def _run(d, rmse, offset_m, datum=(47.0, 8.0, 400.0)):
    d.mkdir()
    t = np.linspace(0.0, 10.0, 21)
    p = np.stack([t * 2.0, np.zeros_like(t), np.zeros_like(t)], 1)
    q = np.tile([0.0, 0.0, 0.0, 1.0], (len(t), 1))
    Trajectory(t, p, q).write_tum(d / "ground_truth.tum")
    Trajectory(t, p + np.array([0.0, offset_m, 0.0]), q).write_tum(d / "fusion.tum")
    rep = {"datum": list(datum), "estimates": {"fusion": {
        "poses": len(t), "ape_horizontal_m": {"rmse": rmse, "max": rmse * 2}}}}  # fmt: skip
    (d / "metrics.json").write_text(json.dumps(rep))
    return d


def test_compare_tabulates_and_overlays_runs(tmp_path, capsys):
    a, b = _run(tmp_path / "a", 0.5, 0.5), _run(tmp_path / "b", 1.5, 1.5)
    rc = main(["eval", "--compare", str(a), str(b), "--out", str(tmp_path / "c")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "0.50" in out and "1.50" in out and "compare.png" in out
    r = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [row["rmse_h_m"] for row in r["rows"]] == [0.5, 1.5]
    assert r["plotted"] == [str(a), str(b)] and (tmp_path / "c" / "compare.png").stat().st_size


def test_compare_refuses_other_frames_and_non_reports(tmp_path, capsys):
    a = _run(tmp_path / "a", 0.5, 0.5)
    b = _run(tmp_path / "b", 0.5, 0.5, datum=(45.0, 7.0, 200.0))
    with pytest.raises(GeolocError, match="different map frames"):
        compare_runs([a, b], tmp_path / "c")
    (tmp_path / "empty").mkdir()
    rc = main(["eval", "--compare", str(a), str(tmp_path / "empty"), "--out", str(tmp_path / "d")])
    assert rc == 1 and "not a geoloc eval report" in capsys.readouterr().err
    assert main(["eval", "--out", str(tmp_path / "e")]) == 1  # neither a bag nor --compare
