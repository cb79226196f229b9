#!/usr/bin/env python3
"""numpy brute-force exact top-k (cosine) for memory-bench: normalised matrix-vector product + argpartition.
Usage: numpy_topk.py VECTORS.f32 QUERIES.f32 N DIM Q K  -> one JSON line on stdout."""
import json, sys, time
import numpy as np
try:
    from threadpoolctl import threadpool_info  # only to report the BLAS in use
except ImportError:
    def threadpool_info():
        return []

vec_path, q_path, n, dim, nq, k = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
m = np.fromfile(vec_path, dtype=np.float32).reshape(n, dim)
m /= np.linalg.norm(m, axis=1, keepdims=True)  # normalised once, like an index would
qs = np.fromfile(q_path, dtype=np.float32).reshape(nq, dim)

def topk(q):
    q = q / np.linalg.norm(q)
    s = m @ q
    idx = np.argpartition(-s, k)[:k]
    return idx[np.argsort(-s[idx])]

topk(qs[0])  # warm
times, top = [], []
for q in qs:
    t = time.perf_counter()
    r = topk(q)
    times.append((time.perf_counter() - t) * 1000)
    top.append([int(i) for i in r])
blas = [f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} threads={i.get('num_threads')}"
        for i in threadpool_info() if i.get("user_api") == "blas"]
print(json.dumps({"median_ms": float(np.median(times)), "mean_ms": float(np.mean(times)), "top": top,
                  "blas": "; ".join(blas), "numpy": np.__version__}))
