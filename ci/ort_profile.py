"""ONNX Runtime's own profiler (`enable_profiling`) on an edgebench export, decode steps after a 1-token prompt (the
shape of tg128): wall time per step, kernel time per operator type. Either graph variant; the file's own accuracy
level.

usage: ort_profile.py MODEL.onnx [THREADS=2] [STEPS=64]
"""
import collections
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort


def main():
    path = sys.argv[1]
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    f = json.loads(meta["edgebench.facts"])
    fused = f.get("variant") == "fused"
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.enable_profiling = True
    o.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    names = ["logits"] + [f"present.{i}.{kv}" for i in range(f["n_layer"]) for kv in ("key", "value")]

    def feeds(ids, past, pos):
        n = len(ids)
        d = {"input_ids": np.array([ids], np.int64), "logits_index": np.array([n - 1], np.int64)}
        if fused:
            d["seqlens_k"] = np.array([pos + n - 1], np.int32)
            d["total_sequence_length"] = np.array(pos + n, np.int32)
        else:
            d["position_ids"] = np.arange(pos, pos + n, dtype=np.int64)[None]
            bias = np.zeros((n, pos + n), np.float32)
            for i in range(n):
                bias[i, pos + i + 1:] = -np.inf
            d["attention_bias"] = bias
        for i in range(f["n_layer"]):
            d[f"past_key_values.{i}.key"] = past[2 * i]
            d[f"past_key_values.{i}.value"] = past[2 * i + 1]
        return d

    past = [np.zeros((1, f["n_head_kv"], 0, f["head_dim"]), np.float32) for _ in range(2 * f["n_layer"])]
    out = s.run(names, feeds([1], past, 0))
    past = out[1:]
    t = time.perf_counter()
    for step in range(steps):
        out = s.run(names, feeds([int(np.argmax(out[0]))], past, step + 1))
        past = out[1:]
    wall = (time.perf_counter() - t) / steps
    events = json.load(open(s.end_profiling()))
    by, count = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
    calls = steps + 1
    print(f"{path}: {wall * 1e3:.2f} ms per decode step (wall, {steps} steps, {threads} threads); "
          f"kernels {sum(by.values()) / calls / 1e3:.2f} ms, {sum(count.values()) / calls:.0f} nodes per call")
    for op, us in by.most_common(12):
        print(f"  {op:34s} {us / calls / 1e3:7.3f} ms/call  x{count[op] / calls:.0f}")


if __name__ == "__main__":
    main()
