#!/usr/bin/env python3
"""Latency percentiles, memoryd vs Redis, from memory-bench's results (the per-shape medians).
Usage: chart.py RESULTS.jsonl OUT.png [subtitle]"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r.get("kind") == "transport" and r.get("summary")]
methods = [m for m in ("ping", "get") if any(r["method"] == m for r in rows)]
shapes = []
for r in rows:
    if r["shape"] not in shapes:
        shapes.append(r["shape"])
fig, axes = plt.subplots(1, len(methods), figsize=(6.5 * len(methods), 4.6), squeeze=False)
pcts = [("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")]
colors = {"memoryd": ["#1f77b4", "#5fa2d6", "#a9cbe8"], "redis": ["#d62728", "#e6716f", "#f2b5b4"]}
# Redis as measured by memory-bench's own load generator (same client, same clock as memoryd) when present.
redis = "redis-mb" if any(r["system"] == "redis-mb" for r in rows) else "redis"
names = {"memoryd": "memoryd", "redis-mb": "Redis", "redis": "Redis (redis-benchmark)"}
for ax, method in zip(axes[0], methods):
    labels = {"ping": "Ping vs PING", "get": "GetMemoryItem vs GET"}
    width, x = 0.13, 0
    ticks = []
    for shape in shapes:
        i = 0
        for system in ("memoryd", redis):
            r = next((r for r in rows if r["method"] == method and r["shape"] == shape and r["system"] == system), None)
            if r is None:
                continue
            for j, (key, name) in enumerate(pcts):
                ax.bar(x + i * width, r[key], width, color=colors["memoryd" if system == "memoryd" else "redis"][j],
                       label=f"{names[system]} {name}" if shape == shapes[0] else None)
                i += 1
        ticks.append(x + (i - 1) * width / 2)
        x += 1
    ax.set_yscale("log")
    ax.set_xticks(ticks, [f"{s.replace('x', ' conn x ')} in flight" for s in shapes])
    ax.set_ylabel("latency (µs, log scale)")
    ax.set_title(labels.get(method, method))
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
fig.suptitle("memoryd vs Redis 7 over a Unix socket, same load generator: latency percentiles (median of runs)"
             + (f"\n{sys.argv[3]}" if len(sys.argv) > 3 else ""), fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
print(f"chart: {sys.argv[2]}")
