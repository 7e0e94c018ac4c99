"""Data-set importers: real recordings -> DESIGN.md bags (rosbag2 mcap).

`IMPORTERS` is the registry, a plain {name: class} dict over one base class
(`Importer`); `geoloc import NAME SRC --out BAG.mcap` runs `IMPORTERS[NAME]().run(...)`.
Module-level imports stay light (NumPy at most) so that the CLI can list the importers
without loading rosbags, OpenCV or SciPy.
"""

from geoloc_ros.io.importers.base import Importer, ImportSummary, SourceError
from geoloc_ros.io.importers.comma2k19 import Comma2k19Importer
from geoloc_ros.io.importers.euroc import EurocImporter
from geoloc_ros.io.importers.rosbag1 import Rosbag1Importer

IMPORTERS: dict[str, type[Importer]] = {
    "comma2k19": Comma2k19Importer,
    "euroc": EurocImporter,
    "rosbag1": Rosbag1Importer,
}

__all__ = ["IMPORTERS", "ImportSummary", "Importer", "SourceError"]
