"""How far ONNX Runtime's logits for a prompt fed in one call are from the same tokens fed one at a time, for an
edgebench export of the fused graph at a given accuracy level, and how far each is from the same graph with f32
activations (accuracy_level=1). Prints per-row KL divergences (nats) and top-1 agreement.

usage: ort_batch_variance.py F32_MODEL.onnx CANDIDATE_MODEL.onnx [THREADS=2]
  (e.g. `edgebench export onnx --accuracy-level 1 --out A` and `edgebench export onnx --out B`, the default level 4)
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

PROMPT = [5, 17, 42, 3, 99, 7, 64]  # the conformance suite's prompt


def facts(path):
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    f = json.loads(meta["edgebench.facts"])
    if f.get("variant") != "fused":
        sys.exit(f"{path}: not a fused-graph export")
    return f


def session(path, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def call(s, f, ids, past, pos, all_rows):
    n = len(ids)
    feeds = {
        "input_ids": np.array([ids], np.int64),
        "logits_index": np.arange(n, dtype=np.int64) if all_rows else np.array([n - 1], np.int64),
        "seqlens_k": np.array([pos + n - 1], np.int32),
        "total_sequence_length": np.array(pos + n, np.int32),
    }
    for i in range(f["n_layer"]):
        feeds[f"past_key_values.{i}.key"] = past[2 * i]
        feeds[f"past_key_values.{i}.value"] = past[2 * i + 1]
    out = s.run(None, feeds)
    return out[0], out[1:]


def empty(f):
    return [np.zeros((1, f["n_head_kv"], 0, f["head_dim"]), np.float32) for _ in range(2 * f["n_layer"])]


def batch(s, f):
    return call(s, f, PROMPT, empty(f), 0, True)[0]


def steps(s, f):
    past, rows = empty(f), []
    for i, t in enumerate(PROMPT):
        logits, past = call(s, f, [t], past, i, False)
        rows.append(logits[0])
    return np.array(rows)


def kld(p, q):
    lp = p - p.max(-1, keepdims=True)
    lp -= np.log(np.exp(lp).sum(-1, keepdims=True))
    lq = q - q.max(-1, keepdims=True)
    lq -= np.log(np.exp(lq).sum(-1, keepdims=True))
    return (np.exp(lp) * (lp - lq)).sum(-1)


def main():
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    f = facts(sys.argv[2])
    ref, cand = session(sys.argv[1], threads), session(sys.argv[2], threads)
    r_b, r_s = batch(ref, f), steps(ref, f)
    c_b, c_s = batch(cand, f), steps(cand, f)
    np.set_printoptions(precision=4, suppress=True)
    print("f32: batch vs steps KLD      ", kld(r_b, r_s))
    print("candidate: batch vs steps KLD", kld(c_s, c_b), "top-1 agree", (c_b.argmax(-1) == c_s.argmax(-1)).mean())
    print("candidate batch vs f32 KLD   ", kld(r_b, c_b), "top-1 agree", (r_b.argmax(-1) == c_b.argmax(-1)).mean())
    print("candidate steps vs f32 KLD   ", kld(r_b, c_s), "top-1 agree", (r_b.argmax(-1) == c_s.argmax(-1)).mean())


if __name__ == "__main__":
    main()
