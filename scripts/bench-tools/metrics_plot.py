"""Draws the Grafana dashboard's panels (docs/grafana-dashboard.json) from scrapes of GET /metrics.

    metrics_plot.py SCRAPE_DIR OUT.png

SCRAPE_DIR holds one Prometheus text file per scrape, named by its Unix time (`1764600000.123.prom`).
Rates are the differences between consecutive scrapes over their time apart; quantiles are
histogram_quantile's (linear inside the bucket) over those differences, as Prometheus computes them.
"""
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402


def load(directory):
    scrapes = []
    for name in sorted(os.listdir(directory), key=lambda n: float(n.rsplit(".", 1)[0])):
        t = float(name.rsplit(".", 1)[0])
        with open(os.path.join(directory, name)) as f:
            text = f.read()
        if not text.strip():
            continue
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        scrapes.append((t, samples))
    return scrapes


def series(scrapes, name, by, where=lambda labels: True):
    """Per-second rate of a counter, summed by the label `by`: {value: [(t, rate)]}."""
    out = defaultdict(list)
    for (t0, a), (t1, b) in zip(scrapes, scrapes[1:]):
        sums = defaultdict(float)
        for (n, labels), v in b.items():
            d = dict(labels)
            if n != name or not where(d):
                continue
            prev = a.get((n, labels), 0.0)
            sums[d.get(by, "")] += max(0.0, v - prev) / (t1 - t0)
        for k, v in sums.items():
            out[k].append((t1, v))
    return out


def quantiles(scrapes, name, q, by):
    """histogram_quantile(q, sum by (by, le) (rate(name_bucket)))."""
    out = defaultdict(list)
    for (t0, a), (t1, b) in zip(scrapes, scrapes[1:]):
        buckets = defaultdict(lambda: defaultdict(float))
        for (n, labels), v in b.items():
            if n != name + "_bucket":
                continue
            d = dict(labels)
            key = tuple(d.get(x, "") for x in by)
            buckets[key][float(d["le"])] += max(0.0, v - a.get((n, labels), 0.0))
        for key, bs in buckets.items():
            les = sorted(bs)
            total = bs[math.inf]
            if total <= 0:
                continue
            rank = q * total
            prev_le, prev_count = 0.0, 0.0
            for le in les:
                if bs[le] >= rank:
                    if math.isinf(le):
                        value = prev_le
                    else:
                        value = prev_le + (le - prev_le) * (rank - prev_count) / max(bs[le] - prev_count, 1e-12)
                    out[" ".join(key)].append((t1, value))
                    break
                prev_le, prev_count = le, bs[le]
    return out


def gauge(scrapes, name):
    return [(t, s.get((name, ()), float("nan"))) for t, s in scrapes]


def main():
    scrapes = load(sys.argv[1])
    if len(scrapes) < 3:
        sys.exit("need at least 3 scrapes")
    t0 = scrapes[0][0]
    fig, axes = plt.subplots(4, 2, figsize=(14, 15))
    fig.suptitle(
        f"memoryd under memory-load (sqlite, 2 workers; 10, then 100, then 10 connections): {len(scrapes)} scrapes "
        f"of GET /metrics in {scrapes[-1][0] - t0:.0f} s — the panels of docs/grafana-dashboard.json",
        fontsize=12,
    )

    def draw(ax, data, title, unit, top=8, log=False):
        # Series that never left zero say nothing; the busiest first.
        ranked = [kv for kv in data.items() if max((v for _, v in kv[1]), default=0) > 0]
        ranked = sorted(ranked, key=lambda kv: -max(v for _, v in kv[1]))[:top]
        for label, points in ranked:
            if points:
                ax.plot([t - t0 for t, _ in points], [v for _, v in points], label=label or "(all)", linewidth=1.2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds")
        ax.set_ylabel(unit)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if ranked:
            ax.legend(fontsize=7, loc="upper left", ncol=2)

    draw(axes[0][0], series(scrapes, "memoryd_calls_total", "method"), "Calls per second by method", "calls/s")
    errors = {f"call {k}": v for k, v in series(scrapes, "memoryd_calls_total", "code", lambda d: d["code"] != "OK").items()}
    errors.update({f"backend {k}": v for k, v in series(scrapes, "memoryd_backend_errors_total", "error_type").items()})
    draw(axes[0][1], errors, "Errors per second by code (calls) and by type (backend)", "errors/s", log=True)
    draw(axes[1][0], quantiles(scrapes, "memoryd_call_duration_seconds", 0.5, ["method"]), "p50 latency by method", "seconds", log=True)
    draw(axes[1][1], quantiles(scrapes, "memoryd_call_duration_seconds", 0.99, ["method"]), "p99 latency by method", "seconds", log=True)
    backend = quantiles(scrapes, "memoryd_backend_request_duration_seconds", 0.99, ["operation"])
    draw(axes[2][0], {f"p99 {k}": v for k, v in backend.items()}, "Backend request latency p99 by operation (sqlite statements)", "seconds", log=True)
    ax = axes[2][1]
    for name, label in [
        ("memoryd_queue_depth", "queue depth"),
        ("memoryd_calls_in_flight", "in flight"),
        ("memoryd_workers_busy", "busy workers"),
        ("memoryd_connections", "connections"),
    ]:
        points = gauge(scrapes, name)
        ax.plot([t - t0 for t, _ in points], [v for _, v in points], label=label, linewidth=1.2)
    ax.set_title("Queue, calls in flight, busy workers, connections", fontsize=10)
    ax.set_xlabel("seconds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    points = gauge(scrapes, "memoryd_circuit_state")
    axes[3][0].step([t - t0 for t, _ in points], [v for _, v in points], where="post", linewidth=2)
    axes[3][0].set_ylim(-0.2, 2.2)
    axes[3][0].set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    axes[3][0].set_title("Circuit breaker (sqlite has none: closed)", fontsize=10)
    axes[3][0].set_xlabel("seconds")
    axes[3][0].grid(alpha=0.3)
    points = gauge(scrapes, "process_resident_memory_bytes")
    axes[3][1].plot([t - t0 for t, _ in points], [v / 2**20 for _, v in points], linewidth=1.5)
    axes[3][1].set_title("Resident memory", fontsize=10)
    axes[3][1].set_xlabel("seconds")
    axes[3][1].set_ylabel("MiB")
    axes[3][1].grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(sys.argv[2], dpi=80)


if __name__ == "__main__":
    main()
