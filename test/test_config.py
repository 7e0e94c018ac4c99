"""Strict typed configuration: unknown keys and wrong types name the key and the file."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from geoloc_ros.config import flatten, from_mapping, load_node_config
from geoloc_ros.errors import ConfigError


@dataclass
class Imu:
    rate_hz: float = 200.0
    frame: str = "imu_link"


@dataclass
class Cfg:
    gain: float = 1.0
    count: int = 3
    enabled: bool = True
    datum: list[float] = field(default_factory=list)
    imu: Imu = field(default_factory=Imu)


def write(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_defaults_and_values_from_node_section(tmp_path):
    path = write(
        tmp_path,
        "my_node:\n  ros__parameters:\n    gain: 2\n    imu:\n      rate_hz: 100\n"
        "    use_sim_time: true\n",
    )
    cfg = load_node_config(Cfg, path, "my_node")
    assert cfg.gain == 2.0 and isinstance(cfg.gain, float)
    assert cfg.imu.rate_hz == 100.0 and cfg.imu.frame == "imu_link"
    assert cfg.count == 3


def test_wildcard_section_applies_and_node_section_wins(tmp_path):
    path = write(
        tmp_path,
        "/**:\n  ros__parameters:\n    count: 7\n    gain: 5.0\n"
        "my_node:\n  ros__parameters:\n    gain: 9.0\n",
    )
    cfg = load_node_config(Cfg, path, "my_node")
    assert (cfg.count, cfg.gain) == (7, 9.0)


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "my_node:\n  ros__parameters:\n    gian: 2.0\n")
    with pytest.raises(ConfigError, match=r"params\.yaml.*unknown key 'gian'"):
        load_node_config(Cfg, path, "my_node")


def test_unknown_nested_key_is_dotted(tmp_path):
    path = write(tmp_path, "my_node:\n  ros__parameters:\n    imu:\n      rate: 2.0\n")
    with pytest.raises(ConfigError, match=r"unknown key 'imu\.rate'"):
        load_node_config(Cfg, path, "my_node")


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        ("count", "1.5", "must be an integer"),
        ("enabled", "1", "must be true or false"),
        ("gain", "fast", "must be a number"),
        ("datum", "3.0", "must be a list"),
        ("gain", "true", "must be a number"),
    ],
)
def test_wrong_type_names_key_and_file(tmp_path, key, value, expect):
    path = write(tmp_path, f"my_node:\n  ros__parameters:\n    {key}: {value}\n")
    with pytest.raises(ConfigError, match=rf"params\.yaml: '{key}' {expect}"):
        load_node_config(Cfg, path, "my_node")


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_node_config(Cfg, tmp_path / "nope.yaml", "my_node")
    path = write(tmp_path, "my_node: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_node_config(Cfg, path, "my_node")


def test_yaml_is_never_evaluated(tmp_path):
    path = write(
        tmp_path,
        "my_node:\n  ros__parameters:\n    gain: !!python/object/apply:os.system ['true']\n",
    )
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_node_config(Cfg, path, "my_node")


def test_flatten_round_trips_through_dotted_names():
    cfg = Cfg(gain=3.0, imu=Imu(rate_hz=50.0))
    flat = flatten(cfg)
    assert flat["imu.rate_hz"] == 50.0
    assert from_mapping(Cfg, flat) == cfg


def test_shipped_configs_load_for_their_nodes():
    from geoloc_ros.fusion.config import FusionConfig
    from geoloc_ros.fusion.gnss_pose import GnssPoseConfig
    from test.conftest import REPO

    for platform in ("car", "drone"):
        path = REPO / "config" / f"{platform}.yaml"
        cfg = load_node_config(GnssPoseConfig, path, "gnss_pose_node")
        assert cfg.map_frame == "map"
        assert cfg.publish_tf is False  # one parent for base_link: fusion_node's TF tree
        fusion = load_node_config(FusionConfig, path, "fusion_node")
        assert fusion.use_nhc is fusion.use_wheel_speed is (platform == "car")
        from geoloc_ros.neuralmap.inputs import MapLocalizerConfig

        ml = load_node_config(MapLocalizerConfig, path, "map_localizer_node")
        assert ml.platform == platform and ml.map_frame == "map"
