#!/usr/bin/env python3
"""numpy brute-force exact top-k (cosine) for memory-bench: normalised matrix-vector product + argpartition.

Usage: numpy_topk.py VECTORS.f32 QUERIES.f32 N DIM Q K            -> one JSON line on stdout (all queries)
       numpy_topk.py VECTORS.f32 QUERIES.f32 N DIM Q K --serve ACK  -> loads, writes {"ready", "load_s"} to the
           FIFO ACK, then for each line "I" on stdin runs query I and writes {"ms", "top"} to ACK; "end" writes the
           BLAS summary and exits. memory-bench uses this to interleave numpy's queries with memoryd's, so that
           both see the same machine load."""
import json, sys, time
import numpy as np
try:
    from threadpoolctl import threadpool_info  # only to report the BLAS in use
except ImportError:
    def threadpool_info():
        return []

vec_path, q_path, n, dim, nq, k = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
t0 = time.perf_counter()
m = np.fromfile(vec_path, dtype=np.float32).reshape(n, dim)
m /= np.linalg.norm(m, axis=1, keepdims=True)  # normalised once, like an index would
load_s = time.perf_counter() - t0
qs = np.fromfile(q_path, dtype=np.float32).reshape(nq, dim)

def topk(q):
    q = q / np.linalg.norm(q)
    s = m @ q
    idx = np.argpartition(-s, k)[:k]
    return idx[np.argsort(-s[idx])]

def blas():
    return "; ".join(f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')} threads={i.get('num_threads')}"
                     for i in threadpool_info() if i.get("user_api") == "blas")

def timed(i):
    t = time.perf_counter()
    r = topk(qs[i])
    return (time.perf_counter() - t) * 1000, [int(x) for x in r]

topk(qs[0])  # warm
if len(sys.argv) > 8 and sys.argv[7] == "--serve":
    with open(sys.argv[8], "w") as ack:
        ack.write(json.dumps({"ready": True, "load_s": load_s}) + "\n"); ack.flush()
        for line in sys.stdin:
            if line.strip() == "end":
                ack.write(json.dumps({"blas": blas(), "numpy": np.__version__}) + "\n"); ack.flush()
                break
            ms, top = timed(int(line))
            ack.write(json.dumps({"ms": ms, "top": top}) + "\n"); ack.flush()
    sys.exit(0)

times, top = [], []
for i in range(nq):
    ms, r = timed(i)
    times.append(ms)
    top.append(r)
print(json.dumps({"median_ms": float(np.median(times)), "mean_ms": float(np.mean(times)), "top": top, "load_s": load_s,
                  "blas": blas(), "numpy": np.__version__}))
