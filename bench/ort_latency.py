"""ONNX Runtime latency on dermo model files, for `scripts/bench export`.

usage: ort_latency.py --input INPUT.f32 --size S [--runs N] [--threads T] MODEL.onnx...
Prints one line per file: `file=… ort_ms=… (median) ort_min_ms=…`, batch 1, after 3 warm-ups.
"""
import argparse
import os
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    x = np.fromfile(a.input, dtype="<f4").reshape(1, 3, a.size, a.size)
    for path in a.models:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        for _ in range(3):
            sess.run(None, {"input": x})
        ms = []
        for _ in range(a.runs):
            t = time.perf_counter()
            sess.run(None, {"input": x})
            ms.append((time.perf_counter() - t) * 1e3)
        ms.sort()
        print(f"file={os.path.basename(path)} ort_ms={ms[len(ms) // 2]:.2f} ort_min_ms={ms[0]:.2f}")


if __name__ == "__main__":
    main()
