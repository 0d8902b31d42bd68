"""Times edgebench's exported ONNX graph through ONNX Runtime's own Python API, the way edgebench's `standard`
suite times the ort backend: pp512 (512 prompt tokens in one call on an empty cache) and tg128 (a 1-token prompt,
then 128 single-token steps, each step's present KV outputs fed back as the next past inputs, greedy argmax).
Same session settings as the ort backend. Prints one JSON object per thread count.

Both graph variants: the primitive one (position ids and an additive causal mask) and the fused one
(GroupQueryAttention: seqlens_k and total_sequence_length); the session's accuracy level is the file's own.

usage: ort_python_timing.py MODEL.onnx THREADS [THREADS ...] [--reps 5] [--warmup 1]
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort


def facts(path):
    m = onnx.load(path, load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    f = json.loads(meta["edgebench.facts"])
    f["accuracy_level"] = json.loads(meta["edgebench.export_options"])["accuracy_level"]
    f.setdefault("variant", "primitive")
    return f


def causal_bias(past, seq):
    m = np.zeros((seq, past + seq), dtype=np.float32)
    for i in range(seq):
        m[i, past + i + 1:] = -np.inf
    return m


def session(path, threads, acc):
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", str(acc))
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def step(s, f, ids, past, pos):
    n = len(ids)
    feeds = {
        "input_ids": ort.OrtValue.ortvalue_from_numpy(np.array([ids], dtype=np.int64)),
        "logits_index": ort.OrtValue.ortvalue_from_numpy(np.array([n - 1], dtype=np.int64)),
    }
    if f["variant"] == "fused":
        feeds["seqlens_k"] = ort.OrtValue.ortvalue_from_numpy(np.array([pos + n - 1], dtype=np.int32))
        feeds["total_sequence_length"] = ort.OrtValue.ortvalue_from_numpy(np.array(pos + n, dtype=np.int32))
    else:
        feeds["position_ids"] = ort.OrtValue.ortvalue_from_numpy(np.arange(pos, pos + n, dtype=np.int64)[None, :])
        feeds["attention_bias"] = ort.OrtValue.ortvalue_from_numpy(causal_bias(pos, n))
    for i in range(f["n_layer"]):
        feeds[f"past_key_values.{i}.key"] = past[2 * i]
        feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
    names = ["logits"] + [f"present.{i}.{kv}" for i in range(f["n_layer"]) for kv in ("key", "value")]
    out = s.run_with_ort_values(names, feeds)
    return out[0].numpy(), list(out[1:])


def empty(f):
    z = np.zeros((1, f["n_head_kv"], 0, f["head_dim"]), dtype=np.float32)
    return [ort.OrtValue.ortvalue_from_numpy(z) for _ in range(2 * f["n_layer"])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("threads", type=int, nargs="+")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    f = facts(a.model)
    rng = np.random.default_rng(7)
    for threads in a.threads:
        s = session(a.model, threads, f["accuracy_level"])
        pp, tg = [], []
        for r in range(a.warmup + a.reps):
            ids = rng.integers(0, f["vocab"], 512).tolist()
            t = time.perf_counter()
            step(s, f, ids, empty(f), 0)
            pp_s = time.perf_counter() - t
            logits, past = step(s, f, [int(rng.integers(0, f["vocab"]))], empty(f), 0)
            t = time.perf_counter()
            for p in range(1, 129):
                logits, past = step(s, f, [int(np.argmax(logits))], past, p)
            tg_s = time.perf_counter() - t
            if r >= a.warmup:
                pp.append(512 / pp_s)
                tg.append(128 / tg_s)
        print(json.dumps({"threads": threads, "onnxruntime": ort.__version__, "graph": f["variant"],
                          "accuracy_level": f["accuracy_level"], "pp512_tps": statistics.median(pp),
                          "tg128_tps": statistics.median(tg), "pp512_samples": pp, "tg128_samples": tg}), flush=True)


if __name__ == "__main__":
    main()
