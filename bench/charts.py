"""Charts of a compare.sh sitting (run through bench/charts.sh, which provides matplotlib).

    charts.py RESULTS_DIR OUT_DIR

RESULTS_DIR/sweep-size-*.json: `herald-bench compare --json` outputs at one offered delivery rate and several room
sizes. RESULTS_DIR/sweep-load-*.json: outputs at one room size and several offered delivery rates. Writes
OUT_DIR/chart-room-size.png (server CPU per delivery and SEND->MESSAGE p99 against subscribers per room) and
OUT_DIR/chart-load.png (p50 and p99 against offered deliveries/s). Every point is a measured figure from those files;
repeated runs of one point are all drawn, and the line goes through their mean.
"""

import glob
import json
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "herald": {"color": "#1f77b4", "marker": "o", "label": "Herald (persists every message)"},
    "reference": {"color": "#444444", "marker": "s", "label": "herald-reference (no app work)"},
    "rabbitmq": {"color": "#ff7f0e", "marker": "^", "label": "RabbitMQ Web-STOMP (no persistence)"},
}


def load(pattern):
    runs = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            d = json.load(f)
        if d.get("mode") != "compare":
            continue
        d["_path"] = os.path.basename(path)
        runs.append(d)
    return runs


def points(runs, x_of, key):
    """{target: {x: [values]}} for one figure key."""
    out = defaultdict(lambda: defaultdict(list))
    for d in runs:
        x = x_of(d["load"])
        for target, t in d["targets"].items():
            v = (t.get("figures") or {}).get(key)
            if v is not None:
                out[target][x].append(v)
    return out


def missing(runs, x_of):
    """{target: {x}} where some delivery never arrived (the server could not keep up)."""
    out = defaultdict(set)
    for d in runs:
        x = x_of(d["load"])
        for target, t in d["targets"].items():
            if ((t.get("figures") or {}).get("deliveries_missing") or 0) > 0:
                out[target].add(x)
    return out


def draw(ax, series, lossy=None, linestyle="-", label_suffix=""):
    for target in ("herald", "reference", "rabbitmq"):
        if target not in series:
            continue
        st = STYLE[target]
        xs = sorted(series[target])
        means = [sum(series[target][x]) / len(series[target][x]) for x in xs]
        ax.plot(xs, means, color=st["color"], linestyle=linestyle, label=st["label"] + label_suffix)
        for x in xs:
            vs = series[target][x]
            lost = lossy is not None and x in lossy.get(target, set())
            ax.scatter(
                [x] * len(vs),
                vs,
                color=st["color"],
                marker="x" if lost else st["marker"],
                s=40 if lost else 22,
                zorder=3,
            )


def loads_note(runs):
    avgs = []
    for d in runs:
        for t in d["targets"].values():
            for k in ("loadavg_before", "loadavg_after"):
                v = t.get(k)
                if v:
                    avgs.append(float(v.split()[0]))
    if not avgs:
        return ""
    return f"1-min load average during the runs: {min(avgs):.2f}–{max(avgs):.2f} on 2 cores (bench on the same cores)"


def room_size_chart(runs, out):
    def size(load):
        return load["fanout_subscribers"] / load["rooms"]

    offered = sorted({round(d["load"]["offered_deliveries_per_s"]) for d in runs})
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    draw(ax1, points(runs, size, "cpu_per_delivery_us"))
    draw(ax2, points(runs, size, "p99_ms"), missing(runs, size))
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.set_xlabel("subscribers per room")
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_ylabel("server CPU per delivery (µs, user+system)")
    ax1.set_yscale("log")  # RabbitMQ is an order of magnitude above the other two
    ax2.set_ylabel("SEND→MESSAGE p99 (ms)")
    ax2.set_yscale("log")
    ax1.set_title("CPU per delivery")
    ax2.set_title("p99 latency (× = deliveries missing)")
    ax1.legend(fontsize=8)
    rate = ", ".join(f"{o:,}" for o in offered)
    fig.suptitle(f"Fan-out against room size, {rate} deliveries/s offered")
    fig.text(0.5, 0.005, loads_note(runs), ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def load_chart(runs, out):
    def offered(load):
        return load["offered_deliveries_per_s"]

    sizes = sorted({round(d["load"]["fanout_subscribers"] / d["load"]["rooms"]) for d in runs})
    fig, ax = plt.subplots(figsize=(8, 5))
    lossy = missing(runs, offered)
    draw(ax, points(runs, offered, "p99_ms"), lossy, "-", " p99")
    draw(ax, points(runs, offered, "p50_ms"), lossy, ":", " p50")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered deliveries/s")
    ax.set_ylabel("SEND→MESSAGE latency (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    size = ", ".join(f"{s:,}" for s in sizes)
    ax.set_title(f"Latency against offered load, 1 room × {size} subscribers (× = deliveries missing)")
    fig.text(0.5, 0.005, loads_note(runs), ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    sizes = load(os.path.join(src, "sweep-size-*.json"))
    loads = load(os.path.join(src, "sweep-load-*.json"))
    if not sizes and not loads:
        sys.exit(f"no sweep-size-*.json or sweep-load-*.json compare outputs in {src}")
    if sizes:
        room_size_chart(sizes, os.path.join(dst, "chart-room-size.png"))
        print(f"chart-room-size.png from {len(sizes)} runs")
    if loads:
        load_chart(loads, os.path.join(dst, "chart-load.png"))
        print(f"chart-load.png from {len(loads)} runs")


if __name__ == "__main__":
    main()
