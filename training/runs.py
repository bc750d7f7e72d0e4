"""Numbered run folders: ``runs/<family>/<NNN>/`` with the resolved config and a metrics CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def new_run_dir(root: str | Path, family: str) -> Path:
    """Create and return the next free ``<root>/<family>/<NNN>`` folder (000, 001, ...)."""
    base = Path(root) / family
    base.mkdir(parents=True, exist_ok=True)
    taken = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    run = base / f"{max(taken, default=-1) + 1:03d}"
    run.mkdir()
    return run


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


class MetricsLog:
    """Append rows of metrics to a CSV file, writing the header on the first row."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fields: list[str] | None = None

    def log(self, **row: Any) -> None:
        if self._fields is None:
            self._fields = list(row)
            with self.path.open("w", newline="") as f:
                csv.DictWriter(f, self._fields).writeheader()
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self._fields).writerow(row)
