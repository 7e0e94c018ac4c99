"""Typed, strict configuration: one dataclass per component, defaults next to the code.

The same YAML file serves `ros2 launch` (ROS parameter file layout
`<node>: {ros__parameters: {...}}`) and the offline tools. Unknown keys and wrong
types raise `ConfigError` naming the key and the file. Nested dataclasses map to
nested YAML mappings and to dotted ROS parameter names (`imu.rate_hz`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from geoloc_ros.errors import ConfigError

T = TypeVar("T")

ROS_RESERVED = {"use_sim_time", "qos_overrides", "start_type_description_service"}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against annotation `tp`; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(value, inner[0], key, source)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: '{key}' must be a mapping for {_type_name(tp)}")
        return _build(tp, value, source, prefix=f"{key}.")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: '{key}' must be a list, got {value!r}")
        items = [_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"{source}: '{key}' has unsupported type {_type_name(tp)}")


def _unflatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Turn dotted keys ({'imu.rate_hz': 200}) into nested mappings."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        node = out
        *parents, leaf = str(key).split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' conflicts with a scalar of the same prefix")
        if isinstance(value, Mapping):
            node.setdefault(leaf, {}).update(_unflatten(value))
        else:
            node[leaf] = value
    return out


def _build(cls: type[T], data: Mapping[str, Any], source: str, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known: {known})")
    kwargs = {
        name: _coerce(value, hints[name], f"{prefix}{name}", source) for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, source: str = "<config>") -> T:
    """Build config `cls` from a (possibly dotted or nested) mapping, strictly."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping of parameters, got {type(data).__name__}")
    return _build(cls, _unflatten(data), source)


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file safely (no object construction); errors name the file."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None


def node_section(doc: Any, node_name: str, source: str) -> dict[str, Any] | None:
    """The `ros__parameters` of `node_name` (or the `/**` wildcard) in a ROS parameter file."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: a ROS parameter file must be a mapping of node names")
    merged: dict[str, Any] = {}
    found = False
    for key in ("/**", node_name, f"/{node_name}"):
        section = doc.get(key)
        if section is None:
            continue
        if not isinstance(section, Mapping) or "ros__parameters" not in section:
            raise ConfigError(f"{source}: '{key}' must contain 'ros__parameters'")
        params = section["ros__parameters"] or {}
        merged.update({k: v for k, v in params.items() if k not in ROS_RESERVED})
        found = True
    return merged if found else None


def load_node_config(cls: type[T], path: str | Path, node_name: str) -> T:
    """Load `cls` from the section of `node_name` in a ROS parameter YAML file."""
    doc = read_yaml(path)
    section = node_section(doc, node_name, str(path))
    if section is None:
        raise ConfigError(f"{path}: no parameters for node '{node_name}'")
    return from_mapping(cls, section, str(path))


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted parameter names and values of a config dataclass (for ROS declaration)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = list(value) if isinstance(value, tuple) else value
    return out


def platform_config(platform: str) -> Path:
    """config/<platform>.yaml: the source tree's, else the one colcon or pip installed."""
    return shipped_config(f"{platform}.yaml")


def shipped_config(name: str) -> Path:
    """config/<name> from the source tree, else from share/geoloc_ros (colcon, pip)."""
    import sys  # noqa: PLC0415

    for root in (Path(__file__).resolve().parents[1], Path(sys.prefix) / "share" / "geoloc_ros"):
        if (root / "config" / name).is_file():
            return root / "config" / name
    raise ConfigError(f"no config/{name} in the source tree or under {sys.prefix}/share")
