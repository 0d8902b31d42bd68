"""Two edgebench exports of the same model, A and B, timed in one process through ONNX Runtime's Python API,
alternating ABBA: each round runs a PROMPT-token prefill on an empty cache, then STEPS greedy single-token decode
steps, on A and on B. Prints the per-round speed ratios B/A (above 1: B faster) and their medians. One process and
strict alternation, so a change in the exporter's graph is measured apart from this VM's drifting speed.

usage: ort_graph_ab.py A.onnx B.onnx [--threads 2] [--rounds 10] [--steps 48] [--prompt 128]

Sessions and steps are `ort_python_timing.py`'s (either graph variant, the file's accuracy level). Needs the `onnx`
and `onnxruntime` packages (the virtual environment `.ci/run` builds for the ONNX checks).
"""
import argparse
import statistics
import time

from ort_python_timing import empty, facts, session, step


def one_round(f, s, prompt, steps):
    """Seconds for the prefill and per decode step."""
    t = time.perf_counter()
    logits, past = step(s, f, list(range(1, prompt + 1)), empty(f), 0)
    prefill = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(steps):
        logits, past = step(s, f, [int(logits.argmax())], past, prompt + i)
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
    sides = {}
    for k, path in (("A", args.a), ("B", args.b)):
        f = facts(path)
        sides[k] = (f, session(path, args.threads, f["accuracy_level"]))
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
