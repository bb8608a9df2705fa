"""Markdown tables from a compare.sh table sitting: every round's figures and ratios, and their spread.

    python3 bench/scripts/compare_summary.py RESULTS_DIR

Reads RESULTS_DIR/{A,B,C}-round<N>.json (herald-bench compare --json). Prints, per scenario, one row per round with
Herald's and the reference's raw figures, the ratio Herald/reference, and the load average before each target, then
the mean ratio and the spread (max/min - 1) of the ratio across rounds.
"""

import glob
import json
import os
import re
import sys

SCENARIOS = {
    "A": ("1 room × 10,000 subscribers × 2 msg/s (+ idle 10,000 held)",
          ["cpu_per_delivery_us", "p50_ms", "p99_ms", "p999_ms", "rss_per_idle_conn_kib", "connects_per_s"]),
    "B": ("1 room × 1,000 subscribers × 100 msg/s", ["cpu_per_delivery_us", "p50_ms", "p99_ms", "p999_ms"]),
    "C": ("idle 19,000 held, uncapped ramp", ["rss_per_idle_conn_kib", "connects_per_s"]),
}
LABEL = {
    "cpu_per_delivery_us": "CPU/delivery µs",
    "p50_ms": "p50 ms",
    "p99_ms": "p99 ms",
    "p999_ms": "p99.9 ms",
    "rss_per_idle_conn_kib": "RSS/idle conn KiB",
    "connects_per_s": "connects/s",
}


def fmt(v):
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def main():
    src = sys.argv[1]
    for key, (title, figures) in SCENARIOS.items():
        runs = []
        for path in sorted(glob.glob(os.path.join(src, f"{key}-round*.json"))):
            with open(path) as f:
                runs.append((int(re.search(r"round(\d+)", path).group(1)), json.load(f)))
        if not runs:
            continue
        runs.sort()
        print(f"\n**{key}: {title}**\n")
        print("| figure | " + " | ".join(f"round {n}: Herald / reference = ratio" for n, _ in runs) + " | mean ratio | spread |")
        print("|---|" + "---|" * (len(runs) + 2))
        for fig in figures:
            cells, ratios = [], []
            for _, d in runs:
                h = d["targets"]["herald"]["figures"].get(fig)
                r = d["targets"]["reference"]["figures"].get(fig)
                ratio = d["ratios"]["herald/reference"].get(fig)
                if ratio is not None:
                    ratios.append(ratio)
                cells.append(f"{fmt(h)} / {fmt(r)} = **{ratio:.2f}×**" if ratio is not None else "n/a")
            mean = sum(ratios) / len(ratios) if ratios else None
            spread = (max(ratios) / min(ratios) - 1) * 100 if len(ratios) > 1 and min(ratios) > 0 else None
            print(f"| {LABEL[fig]} | " + " | ".join(cells)
                  + f" | {'n/a' if mean is None else f'{mean:.2f}×'} | {'n/a' if spread is None else f'{spread:.0f} %'} |")
        loads = []
        for n, d in runs:
            for t in ("herald", "reference"):
                la = d["targets"][t].get("loadavg_before", "").split()[:3]
                loads.append(f"round {n} {t}: {' '.join(la)}")
        print("\nload average (1/5/15 min) before each target: " + "; ".join(loads))


if __name__ == "__main__":
    main()
