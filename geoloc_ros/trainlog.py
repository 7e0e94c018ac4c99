"""train_log.csv of the trainers: a header once, one row per epoch, kept across resumes."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


class TrainLog:
    def __init__(self, path: Path, fields: Sequence[str], fresh: bool) -> None:
        self.path, self.fields = Path(path), list(fields)
        if fresh or not self.path.is_file():
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.fields)

    def row(self, values: dict) -> None:
        """Append `values` in field order; floats with 6 significant digits."""
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([_fmt(values[k]) for k in self.fields])


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)
