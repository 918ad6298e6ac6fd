"""Benchmark the boundary data: start-up (load) cost and 100,000 seeded random points → place
(province, district, subdistrict, neighbours) with Boundaries.locate_many.

Usage: .venv/bin/python bench/bench_locate.py [N] [SEED]

Prints the data file's size, the load time and the memory the loaded data takes (traced Python
allocations, plus the process's resident set growth), the bulk time for N points in Thailand's
bounding box, and the mean time of single lookups. Aim: N = 100,000 in under 2 s.
Needs only the runtime dependencies (no test extras).
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.boundaries import ADMIN_FILE, NEIGHBOURS_FILE, Boundaries  # noqa: E402

# Thailand's bounding box (lat_min, lat_max, lon_min, lon_max), rounded outwards.
BBOX = (5.6, 20.5, 97.3, 105.7)
AIM_S = 2.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main(argv: list[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 100_000
    seed = int(argv[2]) if len(argv) > 2 else 20240601
    rng = np.random.default_rng(seed)
    lats = rng.uniform(BBOX[0], BBOX[1], n)
    lons = rng.uniform(BBOX[2], BBOX[3], n)

    rss0 = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    b = Boundaries.from_files(ADMIN_FILE, NEIGHBOURS_FILE)
    t_load = time.perf_counter() - t0
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_load = _rss_mb() - rss0

    t0 = time.perf_counter()
    places = b.locate_many(lats, lons)
    t_many = time.perf_counter() - t0

    kinds = Counter(
        "sea" if p.sea else "outside" if not p.inside else ("snapped" if p.snapped else "inside") for p in places
    )
    with_sub = sum(1 for p in places if p.inside and p.subdistrict_code)
    with_neigh = sum(1 for p in places if p.neighbours)
    # measured what is printed: one answer per point, every place inside down to its subdistrict
    assert len(places) == n
    assert kinds["inside"] + kinds["snapped"] == with_sub and with_sub > n // 4

    m = min(n, 2_000)
    t0 = time.perf_counter()
    for la, lo in zip(lats[:m].tolist(), lons[:m].tolist()):
        b.locate(la, lo)
    t_single = (time.perf_counter() - t0) / m

    size = ADMIN_FILE.stat().st_size + NEIGHBOURS_FILE.stat().st_size
    print(f"data: {ADMIN_FILE.name} {ADMIN_FILE.stat().st_size / 1e6:.2f} MB + {NEIGHBOURS_FILE.name} "
          f"{NEIGHBOURS_FILE.stat().st_size / 1e6:.2f} MB = {size / 1e6:.2f} MB; "
          f"{b.subdistrict_count:,} subdistricts")
    print(f"load: {t_load:.2f} s; memory: {traced / 1e6:.0f} MB traced, max RSS +{rss_load:.0f} MB")
    print(f"locate_many: {n:,} points to subdistrict in {t_many:.2f} s = {n / t_many:,.0f} points/s "
          f"(aim < {AIM_S:.0f} s for 100,000: {'met' if t_many * 100_000 / n < AIM_S else 'NOT met'})")
    print(f"locate (single, mean over {m:,}): {t_single * 1e6:.0f} us")
    print(f"results: {dict(kinds)}; to a subdistrict: {with_sub:,}; with neighbours: {with_neigh:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
