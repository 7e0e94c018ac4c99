"""The demo's inputs: the demo world, one simulated drive and the neural map, made once.

Everything lands in a cache folder and is reused on the next run when it was made
from the same settings (a world checks its own config; a drive's name carries its
settings and a hash of the world's, and it is renamed into place when complete; a map
is built in a temporary folder, renamed when complete, and carries the sha256
of the model that encoded it). An interrupted run therefore never leaves a half file
that a later run would trust.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from geoloc_ros.errors import ConfigError
from geoloc_ros.sim.world import WorldConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoScenario:
    """What the demo simulates: a 3-minute drive (or flight) with multipath and an outage."""

    platform: str = "car"
    duration_s: float = 180.0
    seed: int = 7
    outage_s: tuple[float, float] = (90.0, 60.0)  # (start from bag start, duration)
    world: WorldConfig = field(default_factory=lambda: WorldConfig.preset("demo"))
    world_name: str = "demo"  # cache folder of the world

    def __post_init__(self) -> None:
        self.drive_config()  # the simulator's own checks: platform, duration, outage start
        start, dur = self.outage_s
        if not (self.duration_s > 0 and start >= 0 and dur > 0 and start + dur < self.duration_s):
            raise ConfigError(
                f"the GNSS outage {start:g}:{dur:g} s must end inside the "
                f"{self.duration_s:g} s drive"
            )

    def drive_config(self):
        """The simulator's DriveConfig of this drive."""
        from geoloc_ros.sim.drive import DriveConfig  # noqa: PLC0415

        return DriveConfig(platform=self.platform, duration_s=self.duration_s, seed=self.seed,
                           gnss_outages=(self.outage_s,))  # fmt: skip

    @property
    def drive_name(self) -> str:
        """File stem naming the settings, plus a hash of the world's config and generator."""
        import hashlib  # noqa: PLC0415

        from geoloc_ros.sim.world import GENERATOR_VERSION  # noqa: PLC0415

        a, d = self.outage_s
        key = json.dumps([self.world.to_json(), GENERATOR_VERSION], sort_keys=True, default=str)
        h = hashlib.sha256(key.encode()).hexdigest()[:8]
        return (f"{self.world_name}-{h}_{self.platform}_s{self.seed}_{self.duration_s:g}s"
                f"_out{a:g}-{d:g}")  # fmt: skip


@dataclass(frozen=True)
class DemoInputs:
    world_dir: Path
    bag: Path
    map_dir: Path
    made: tuple[str, ...]  # which of world, drive, map this run had to make


def prepare(scn: DemoScenario, cache: Path, map_model: Path, progress: bool) -> DemoInputs:
    """World, drive and map for `scn` under `cache`, made only where missing."""
    from geoloc_ros.sim.world import write_world  # noqa: PLC0415

    cache.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    world_dir = cache / "worlds" / scn.world_name
    world, created = write_world(scn.world, world_dir, progress=progress)
    if created:
        made.append("world")
    bag = cache / "drives" / f"{scn.drive_name}.mcap"
    if not bag.is_file():
        _simulate(world, scn, bag, progress)
        made.append("drive")
    map_dir = _map(world_dir, scn, cache, map_model, progress)
    if map_dir[1]:
        made.append("map")
    return DemoInputs(world_dir, bag, map_dir[0], tuple(made))


def _simulate(world, scn: DemoScenario, bag: Path, progress: bool) -> None:
    """The drive (simulate_drive writes a temporary bag and renames it when complete)."""
    from geoloc_ros.sim.drive import simulate_drive  # noqa: PLC0415

    bag.parent.mkdir(parents=True, exist_ok=True)
    simulate_drive(world, scn.drive_config(), bag, progress=progress)


def _map(world_dir: Path, scn: DemoScenario, cache: Path, model: Path, progress: bool):
    """(map folder, made): the world encoded by `model`, reused while the model is the same."""
    from geoloc_ros.neuralmap.bundle import load_bundle  # noqa: PLC0415
    from geoloc_ros.neuralmap.tiles import MAP_CARD, build_map  # noqa: PLC0415

    sha = load_bundle(model).weights_sha256
    out = cache / "maps" / f"{scn.world_name}_{scn.platform}_{sha[:12]}"
    card = out / MAP_CARD
    if card.is_file() and json.loads(card.read_text()).get("model_sha256") == sha:
        return out, False
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        build_map(tmp, model, world=world_dir, progress=progress)
        if out.exists():
            shutil.rmtree(out)
        tmp.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out, True
