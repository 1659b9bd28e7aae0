"""Where the dashboard's memory per socket goes (#14): live bytes by layer, the real collector and
the real (headless) dashboard state against a real loopback load (bench/load.py).

    .venv/bin/python bench/memlayers.py --sizes 20000x100 --polls 5

After ``--polls`` polls (with 1% churn between them, as bench/dashcpu.py makes) it takes one
tracemalloc snapshot and sums the live blocks by the file and line that allocated them, then
groups those by layer (the netlink reader's cache, records, Socks, owners, rows, tracker, table
models, health); it also counts live objects by type (gc). Bytes per socket = bytes / sockets
in the last snapshot. tracemalloc makes polls slower: CPU figures come from bench/dashcpu.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

# layer -> the files whose allocations it holds (first match wins: more specific first)
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("netlink reader (cache keys, records, endpoints)", ("app/fast/netlink.py", "app/fast/records.py")),
    ("collector (Socks, sorted lists, inode maps)", ("app/fast/collector.py", "app/backends/base.py")),
    ("owner map (fd maps, holders, tables)", ("app/fast/owners.py", "app/fast/procfs.py")),
    ("model (Snapshot keys, endpoint keys)", ("app/model.py",)),
    ("tracker (ids, keys by endpoint)", ("app/tui/tracking.py", "app/events.py")),
    ("rows (SockRow, filter rows)", ("app/tui/rows.py", "app/filtering.py", "app/tui/formatting.py")),
    ("table models (widgets)", ("widgets/",)),
    ("health (LiveHealth)", ("app/tui/livehealth.py", "app/health.py")),
    ("processes", ("app/processes.py", "app/owners.py")),
    ("dashboard state", ("app/tui/state.py",)),
)


def layer_of(filename: str) -> str:
    for name, parts in LAYERS:
        if any(p in filename for p in parts):
            return name
    return "other: " + filename.rsplit("/", 2)[-1] if "/lib/" in filename else "other"


def measure(n: int, p: int, polls: int, churn: float, top: int) -> dict[str, object]:
    from load import Load

    from app.collector import PsutilCollector
    from app.exposure import ExposureMap
    from app.fast.collector import FastCollector
    from app.owners import OwnerFacts
    from app.tui.formatting import fmt_remote
    from app.tui.state import Dashboard

    with Load(n, p) as load:
        tracemalloc.start(1)
        collector = FastCollector(stats=True, fallback=PsutilCollector)
        dash = Dashboard(ExposureMap(), remote_format=fmt_remote, facts=OwnerFacts())
        for i in range(polls):
            if i:
                load.churn_fraction(churn)
            snap = collector.collect()
            dash.apply_snapshot(snap)
        del snap
        gc.collect()
        sockets = len(dash.snapshot.sockets) if dash.snapshot is not None else 0
        shot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        by_line: Counter[str] = Counter()
        by_layer: Counter[str] = Counter()
        for stat in shot.statistics("lineno"):
            frame = stat.traceback[0]
            where = f"{frame.filename.replace(str(ROOT) + '/', '')}:{frame.lineno}"
            by_line[where] += stat.size
            by_layer[layer_of(frame.filename)] += stat.size
        types = Counter(type(o).__name__ for o in gc.get_objects())
        total = sum(by_layer.values())
        out = {
            "sockets": sockets,
            "polls": polls,
            "traced_bytes": total,
            "bytes_per_socket": round(total / sockets, 1) if sockets else None,
            "layers_bytes_per_socket": {k: round(v / sockets, 1) for k, v in by_layer.most_common()},
            "top_lines_bytes_per_socket": {k: round(v / sockets, 1) for k, v in by_line.most_common(top)},
            "gc_objects_per_socket": {k: round(v / sockets, 2) for k, v in types.most_common(25)},
        }
        collector.close()
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000x100", help="NxP (sockets x processes)")
    ap.add_argument("--polls", type=int, default=5)
    ap.add_argument("--churn", type=float, default=0.01)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", help="write the JSON here too")
    args = ap.parse_args(argv)
    n, p = (int(x) for x in args.sizes.split("x"))
    result = measure(n, p, args.polls, args.churn, args.top)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
