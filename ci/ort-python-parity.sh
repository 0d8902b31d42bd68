#!/usr/bin/env bash
# The ort backend against ONNX Runtime's own Python API on the same exported graph (the export defaults, which are the
# ort backend's: the fused graph with int8 activations), same library version, same
# session settings, same machine, one after the other: edgebench's `standard` suite (pp512, tg128) for the ort
# backend, then ci/ort_python_timing.py. Prints both and their ratios; exits 1 if edgebench is more than
# MAX_SLOWDOWN (default 0.25) slower on any figure (the claim is "within 10%"; CI machines are noisy).
#
# usage: ci/ort-python-parity.sh [THREADS...]   (default: 1 2); env: EDGEBENCH_BIN, REPS, MAX_SLOWDOWN
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/common.sh
threads=("${@:-1}")
[ $# -eq 0 ] && threads=(1 2)
bin="${EDGEBENCH_BIN:-target/release/edgebench}"
reps="${REPS:-5}"
py="$(python_env)"
out="$(mktemp -d)"
"$bin" export onnx --out "$out/export" >/dev/null
"$py" ci/onnx_check.py "$out/export/model.onnx"
tlist="$(IFS=,; echo "${threads[*]}")"
"$bin" run --suite standard --backend ort --threads "$tlist" --repetitions "$reps" --drift off \
    --out "$out/edgebench.json" --format json >/dev/null
"$py" ci/ort_python_timing.py "$out/export/model.onnx" "${threads[@]}" --reps "$reps" >"$out/python.jsonl"
"$py" - "$out/edgebench.json" "$out/python.jsonl" "${MAX_SLOWDOWN:-0.25}" <<'PY'
import json, sys
eb = json.load(open(sys.argv[1]))
py = [json.loads(l) for l in open(sys.argv[2])]
limit = float(sys.argv[3])
def metric(c, k):
    m = c.get("metrics", {}).get(k)
    if not m:
        sys.exit(f"edgebench's {c['key']['workload']} cell at {c['key']['threads']} threads has no {k}: {c.get('status')}")
    return m["summary"]["median"]
bad = False
print(f"{'threads':>7} {'figure':>12} {'edgebench':>10} {'python':>10} {'ratio':>6}")
for p in py:
    for wl, key, pk in (("pp512", "prefill_tps", "pp512_tps"), ("tg128", "decode_tps", "tg128_tps")):
        cell = next(c for c in eb["cells"] if c["key"]["workload"] == wl and c["key"]["threads"] == p["threads"])
        e = metric(cell, key)
        r = e / p[pk]
        bad |= r < 1 - limit
        print(f"{p['threads']:>7} {wl + ' t/s':>12} {e:>10.2f} {p[pk]:>10.2f} {r:>6.3f}")
sys.exit(1 if bad else 0)
PY
