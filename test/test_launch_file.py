"""launch/geoloc.launch.py checked without `launch` (not on PyPI): every node it starts is a
console script of setup.py, every platform's config file exists and holds a valid section
for that node, and every parameter it passes inline is one the node declares. Where
`launch_ros` is importable, the launch description is also built."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import numpy as np
import pytest

from geoloc_ros.config import ROS_RESERVED, flatten, load_node_config

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch" / "geoloc.launch.py"


def _launch_tree() -> ast.Module:
    return ast.parse(LAUNCH.read_text())


def _node_calls() -> list[dict]:
    """package, executable, name and inline parameter keys of each Node(...) call."""
    out = []
    for call in ast.walk(_launch_tree()):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Node":
            kw = {k.arg: k.value for k in call.keywords}
            keys = {
                k.value
                for d in ast.walk(kw["parameters"])
                if isinstance(d, ast.Dict)
                for k in d.keys
                if isinstance(k, ast.Constant)
            }
            names = {f: getattr(kw[f], "value", None) for f in ("package", "executable", "name")}
            out.append(names | {"keys": keys})  # a computed (f-string) name reads as None
    return out


def _console_scripts() -> dict[str, str]:
    text = (ROOT / "setup.py").read_text()
    return dict(re.findall(r'"(\w+) = ([\w.]+):main"', text))


def _platforms() -> tuple[str, ...]:
    for node in _launch_tree().body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "PLATFORMS":
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("launch file defines no PLATFORMS")


def _config_class(module: str):
    """The dataclass a node module passes to declare_config."""
    src = Path(importlib.util.find_spec(module).origin).read_text()
    name = re.search(r"declare_config\(self, (\w+)", src).group(1)
    pytest.importorskip("rclpy", reason="node modules import rclpy (make test installs it)")
    return getattr(importlib.import_module(module), name)


def test_every_launched_node_is_a_console_script_with_its_own_name():
    scripts = _console_scripts()
    calls = [c for c in _node_calls() if c["package"] == "geoloc_ros"]
    assert {c["executable"] for c in calls} == {
        "fusion_node", "gnss_pose_node", "posenet_node", "map_localizer_node"
    }  # fmt: skip
    for c in calls:
        assert c["executable"] in scripts
        assert c["name"] == c["executable"]  # the config sections are keyed by node name
    others = [c for c in _node_calls() if c["package"] != "geoloc_ros"]
    assert [(c["package"], c["executable"]) for c in others] == [
        ("tf2_ros", "static_transform_publisher")
    ]
    assert "<exec_depend>tf2_ros</exec_depend>" in (ROOT / "package.xml").read_text()


@pytest.mark.parametrize("platform", _platforms())
def test_the_extrinsics_published_are_the_mounts_the_nodes_use(platform):
    from geoloc_ros.extrinsics import static_transforms
    from geoloc_ros.geo.se3 import T_from_pq
    from geoloc_ros.neuralmap.inputs import MapLocalizerConfig

    config = ROOT / "config" / f"{platform}.yaml"
    tfs = {t.child: t for t in static_transforms(config)}
    assert set(tfs) == {"imu_link", "gnss_link", "camera_optical_frame"}
    cam = tfs["camera_optical_frame"]
    ml = load_node_config(MapLocalizerConfig, config, "map_localizer_node")
    np.testing.assert_allclose(T_from_pq(cam.xyz_m, cam.q_xyzw), ml.T_base_cam(), atol=1e-9)
    args = cam.arguments()
    assert args[-4:] == ["--frame-id", "base_link", "--child-frame-id", "camera_optical_frame"]
    assert float(args[args.index("--z") + 1]) == cam.xyz_m[2]


@pytest.mark.parametrize("platform", _platforms())
def test_each_platform_config_has_a_valid_section_per_launched_node(platform):
    config = ROOT / "config" / f"{platform}.yaml"
    assert config.is_file()
    scripts = _console_scripts()
    for c in _node_calls():
        if c["package"] != "geoloc_ros":
            continue
        cls = _config_class(scripts[c["executable"]])
        load_node_config(cls, config, c["name"])  # raises on unknown or mistyped keys
        declared = set(flatten(cls()))
        assert c["keys"] <= declared | ROS_RESERVED, (c["name"], c["keys"] - declared)


def test_the_launch_description_builds_where_launch_is_installed():
    pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI; checked statically above")
    spec = importlib.util.spec_from_file_location("geoloc_launch", LAUNCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert len(mod.generate_launch_description().entities) > 5
