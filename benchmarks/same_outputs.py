"""Compare two output folders of ``benchmarks/same_outputs.sh``: every JSON (values, without
provenance, paths and format_version), CSV and PNG (bytes), raster (pixels) and polygon file
(geometries) of the first must be in the second, equal. Prints each difference and their count;
exits 1 when there is one.

    .venv/bin/python benchmarks/same_outputs.py OUT_BEFORE OUT_AFTER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio

#: Keys that name where and when, not what: left out of the comparison.
IGNORED = {"provenance", "source", "format_version", "weights", "scene", "dsm", "created"}


def _clean(value):
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in IGNORED}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def differences(a: Path, b: Path) -> list[str]:
    found = []
    for fa in sorted(p for p in a.rglob("*") if p.is_file()):
        rel = fa.relative_to(a)
        fb = b / rel
        if "report" in fa.name or fa.suffix == ".txt" or fa.name.startswith("."):
            continue
        if not fb.is_file():
            found.append(f"missing: {rel}")
        elif fa.suffix == ".json":
            ja, jb = (_clean(json.loads(f.read_text())) for f in (fa, fb))
            if ja != jb:
                keys = sorted(k for k in set(ja) | set(jb) if ja.get(k) != jb.get(k))
                found.append(f"values differ: {rel} ({', '.join(keys)})")
        elif fa.suffix == ".tif":
            with rasterio.open(fa) as x, rasterio.open(fb) as y:
                ra, rb = x.read(), y.read()
            if ra.shape != rb.shape or not np.array_equal(ra, rb, equal_nan=True):
                found.append(f"pixels differ: {rel}")
        elif fa.suffix in (".csv", ".png"):
            if fa.read_bytes() != fb.read_bytes():
                found.append(f"bytes differ: {rel}")
        elif fa.suffix in (".gpkg", ".geojson"):
            import geopandas as gpd

            ga, gb = gpd.read_file(fa), gpd.read_file(fb)
            if len(ga) != len(gb) or not ga.geometry.geom_equals(gb.geometry).all():
                found.append(f"polygons differ: {rel} ({len(ga)} vs {len(gb)})")
    return found


def main(argv: list[str] | None = None) -> int:
    a, b = (Path(p) for p in (argv or sys.argv[1:]))
    found = differences(a, b)
    compared = sum(1 for p in a.rglob("*") if p.is_file() and p.suffix in
                   (".json", ".tif", ".csv", ".png", ".gpkg", ".geojson")
                   and "report" not in p.name)
    for line in found:
        print(line)
    print(f"{compared} files compared, {len(found)} differ")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
