"""Summary of an ABBA parity run (ci/tract-parity.sh, ci/candle-parity.sh, ci/ort-python-parity.sh): per figure and thread count, the medians
of edgebench's and the reference tool's t/s and the median of the per-round ratios edgebench / tool.

usage: parity_summary.py OUT ROUNDS MIN_RATIO TOOL   (OUT holds reference-R.jsonl and edgebench-R.json per round R)
Exit 0 when every ratio is at least MIN_RATIO, 1 otherwise.
"""
import json, statistics, sys
out, rounds, min_ratio, tool = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
med = statistics.median
ratios, ref_all, eb_all = {}, {}, {}
for r in range(1, rounds + 1):
    ref, eb = {}, {}
    for line in open(f"{out}/reference-{r}.jsonl"):
        g = json.loads(line)
        ref[("pp512", g["threads"])] = g["pp512_samples"]
        ref[("tg128", g["threads"])] = g["tg128_samples"]
    for c in json.load(open(f"{out}/edgebench-{r}.json"))["cells"]:
        if c.get("status") != "ok":
            sys.exit(f"edgebench cell failed: {c.get('key')}: {c.get('status')}")
        w = c["key"]["workload"]
        eb[(w, c["key"]["threads"])] = c["metrics"]["prefill_tps" if w == "pp512" else "decode_tps"]["samples"]
    for k in ref:
        if k not in eb:
            sys.exit(f"edgebench has no {k[0]} cell at {k[1]} threads")
        ratios.setdefault(k, []).append(med(eb[k]) / med(ref[k]))
        ref_all.setdefault(k, []).extend(ref[k])
        eb_all.setdefault(k, []).extend(eb[k])
worst = min(med(v) for v in ratios.values())
w = max(14, len(tool) + 4)
print(f"{'test':<6} {'thr':>3} {tool + ' t/s':>{w}} {'edgebench t/s':>14} {'ratio':>7}  per-round ratios")
for k in sorted(ratios):
    per = " ".join(f"{x:.3f}" for x in ratios[k])
    print(f"{k[0]:<6} {k[1]:>3} {med(ref_all[k]):>{w}.2f} {med(eb_all[k]):>14.2f} {med(ratios[k]):>7.3f}  {per}")
print(f"t/s: medians of all repetitions; ratio: median of per-round ratios (edgebench / {tool}); "
      f"lowest {worst:.3f} (pass: at least {min_ratio})")
sys.exit(0 if worst >= min_ratio else 1)
