"""Benchmark Boundaries.locate_many on 100,000 seeded random points in Thailand's bbox.

Usage: .venv/bin/python bench/bench_locate.py [N] [SEED]
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.boundaries import Boundaries  # noqa: E402

# Thailand's bounding box (lat_min, lat_max, lon_min, lon_max), rounded outwards.
BBOX = (5.6, 20.5, 97.3, 105.7)


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 100_000
    seed = int(argv[2]) if len(argv) > 2 else 20240601
    rng = np.random.default_rng(seed)
    lats = rng.uniform(BBOX[0], BBOX[1], n)
    lons = rng.uniform(BBOX[2], BBOX[3], n)

    t0 = time.perf_counter()
    b = Boundaries.default()
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    places = b.locate_many(lats, lons)
    t_many = time.perf_counter() - t0

    kinds = Counter(
        "outside" if not p.inside else ("snapped" if p.snapped else "inside") for p in places
    )
    with_neigh = sum(1 for p in places if p.neighbours)

    m = min(n, 2_000)
    t0 = time.perf_counter()
    for la, lo in zip(lats[:m].tolist(), lons[:m].tolist()):
        b.locate(la, lo)
    t_single = (time.perf_counter() - t0) / m

    print(f"load: {t_load:.2f} s")
    print(f"locate_many: {n:,} points in {t_many:.2f} s = {n / t_many:,.0f} rows/s")
    print(f"locate (single, mean over {m:,}): {t_single * 1e6:.0f} us")
    print(f"results: {dict(kinds)}; with neighbours: {with_neigh:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
