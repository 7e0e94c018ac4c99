"""`geoloc import ...` verbs, one per registered importer. Parsers only; the work runs lazily.

Wire into the main parser with `add_parsers(sub)`. Errors surface as GeolocError
(ConfigError for bad options or outputs, SourceError/BagError for bad inputs), which the
main CLI prints as one line and exit code 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_import(args: argparse.Namespace) -> int:
    from geoloc_ros.io.importers import IMPORTERS  # noqa: PLC0415

    importer = IMPORTERS[args.dataset].from_args(args)  # option errors before any work
    result = importer.run(Path(args.src), Path(args.out), progress=not args.quiet)
    print(result.table())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Add `import DATASET SRC --out BAG.mcap` to the `geoloc` subcommands."""
    from geoloc_ros.io.importers import IMPORTERS  # noqa: PLC0415  (NumPy only)

    imp = sub.add_parser(
        "import", help="turn a real data set (comma2k19, EuRoC, ROS 1 bag) into a DESIGN bag"
    )
    isub = imp.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, cls in IMPORTERS.items():
        p = isub.add_parser(name, help=cls.describe, description=cls.describe)
        p.add_argument("src", metavar="SRC", help=cls.source_help)
        p.add_argument("--out", required=True, help="output .mcap (must not exist)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        cls.add_arguments(p)
        p.set_defaults(func=_cmd_import)
