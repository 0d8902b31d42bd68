"""Two fused-graph edgebench exports of the same model, A and B, timed in one process through ONNX Runtime's Python
API, alternating ABBA: each round runs a PROMPT-token prefill on an empty cache, then STEPS greedy single-token decode
steps, on A and on B. Prints the per-round speed ratios B/A (above 1: B faster) and their medians. One process and
strict alternation, so a change in the exporter's graph is measured apart from this VM's drifting speed.

usage: ort_graph_ab.py A.onnx B.onnx [--threads 2] [--rounds 10] [--steps 48] [--prompt 128]

Needs the `onnx` and `onnxruntime` packages (the virtual environment `.ci/run` builds for the ONNX checks).
"""
import argparse
import json
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort


def load(path, threads):
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    facts = json.loads(meta["edgebench.facts"])
    if facts.get("variant") != "fused":
        raise SystemExit(f"{path}: a {facts.get('variant', 'primitive')} graph; this script times fused exports")
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.log_severity_level = 3
    return facts, ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def one_round(facts, session, prompt, steps):
    """Seconds for the prefill and per decode step."""
    n_layer = facts["n_layer"]
    names = ["logits"] + [f"present.{i}.{kv}" for i in range(n_layer) for kv in ("key", "value")]

    def feeds(ids, past, pos):
        n = len(ids)
        d = {
            "input_ids": np.array([ids], np.int64),
            "logits_index": np.array([n - 1], np.int64),
            "seqlens_k": np.array([pos + n - 1], np.int32),
            "total_sequence_length": np.array(pos + n, np.int32),
        }
        for i in range(n_layer):
            d[f"past_key_values.{i}.key"] = past[2 * i]
            d[f"past_key_values.{i}.value"] = past[2 * i + 1]
        return d

    past = [np.zeros((1, facts["n_head_kv"], 0, facts["head_dim"]), np.float32) for _ in range(2 * n_layer)]
    t = time.perf_counter()
    out = session.run(names, feeds(list(range(1, prompt + 1)), past, 0))
    prefill = time.perf_counter() - t
    past = out[1:]
    t = time.perf_counter()
    for step in range(steps):
        out = session.run(names, feeds([int(np.argmax(out[0]))], past, prompt + step))
        past = out[1:]
    return prefill, (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--prompt", type=int, default=128)
    args = ap.parse_args()
    sides = {"A": load(args.a, args.threads), "B": load(args.b, args.threads)}
    for side in sides.values():
        one_round(*side, 8, 2)
    times = {"A": [], "B": []}
    for r in range(args.rounds):
        for k in "AB" if r % 2 == 0 else "BA":
            times[k].append(one_round(*sides[k], args.prompt, args.steps))
    pre = [a[0] / b[0] for a, b in zip(times["A"], times["B"])]
    dec = [a[1] / b[1] for a, b in zip(times["A"], times["B"])]
    fmt = " ".join
    print(f"threads {args.threads}, {args.rounds} rounds ABBA, prefill {args.prompt} tokens, {args.steps} decode steps")
    print(f"decode ms/step (median): A {statistics.median(t[1] for t in times['A']) * 1e3:.2f}, "
          f"B {statistics.median(t[1] for t in times['B']) * 1e3:.2f}")
    print(f"decode speed B/A: median {statistics.median(dec):.3f} (per round {fmt(f'{x:.3f}' for x in dec)})")
    print(f"prefill speed B/A: median {statistics.median(pre):.3f} (per round {fmt(f'{x:.3f}' for x in pre)})")


if __name__ == "__main__":
    main()
