#!/usr/bin/env bash
# edgebench's tract backend against tract's own API on the same ONNX file: backends/tract/examples/tract_reference.rs loads
# the export the tract backend runs (`edgebench export onnx --graph primitive --accuracy-level 1 --untied-head`),
# plans it once and calls one spawned state, with no edgebench code between calls, timed on llama-bench's pp512 and
# tg128 as edgebench's `standard` suite times them. Same tract, same threads, alternating ABBA for ROUNDS rounds; the
# verdict per figure is the median of the per-round ratios edgebench/tract.
#
#   ci/tract-parity.sh [MODEL.gguf] [THREADS=1,2] [ROUNDS=2]     env: EDGEBENCH_BIN, REPS (5), MIN_RATIO (0.90)
#
# Exit 0 when every ratio is at least MIN_RATIO (0.90: "within 10% of tract's own measurement"), 1 otherwise, 2 on
# error.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${2:-1,2}"
rounds="${3:-2}"
reps="${REPS:-5}"
min_ratio="${MIN_RATIO:-0.90}"
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --quiet -p edgebench-backend-tract --example tract_reference
ref="$target/release/examples/tract_reference"
if [ -n "${EDGEBENCH_BIN:-}" ]; then
    eb="$EDGEBENCH_BIN"
else
    cargo build --release --quiet
    eb="$target/release/edgebench"
fi
model="${1:-$("$eb" models fetch)}"
[ -f "$model" ] || { echo "no model file at $model" >&2; exit 2; }
export_dir="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/tract-parity/export-$(sha256sum "$model" | cut -c1-16)"
"$eb" export onnx --model "$model" --out "$export_dir" --graph primitive --accuracy-level 1 --untied-head >/dev/null

out="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/tract-parity/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
echo "model: $model; threads: $threads; rounds: $rounds; raw results: $out"

run_reference() {
    echo "round $1: tract API"
    local t
    for t in ${threads//,/ }; do
        "$ref" "$export_dir/model.onnx" --threads "$t" --reps "$reps" >>"$out/reference-$1.jsonl"
    done
}
run_edgebench() {
    echo "round $1: edgebench"
    "$eb" run --suite standard --backend tract --model "$model" --threads "$threads" --repetitions "$reps" \
        --drift off --force --format json --out "$out/edgebench-$1.json" >/dev/null
}
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        run_reference "$r"; run_edgebench "$r"
    else
        run_edgebench "$r"; run_reference "$r"
    fi
done

python3 - "$out" "$rounds" "$min_ratio" <<'PY' | tee "$out/table.txt"
import json, statistics, sys
out, rounds, min_ratio = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
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
print(f"{'test':<6} {'thr':>3} {'tract API t/s':>14} {'edgebench t/s':>14} {'ratio':>7}  per-round ratios")
for k in sorted(ratios):
    per = " ".join(f"{x:.3f}" for x in ratios[k])
    print(f"{k[0]:<6} {k[1]:>3} {med(ref_all[k]):>14.2f} {med(eb_all[k]):>14.2f} {med(ratios[k]):>7.3f}  {per}")
print(f"t/s: medians of all repetitions; ratio: median of per-round ratios (edgebench / tract API); "
      f"lowest {worst:.3f} (pass: at least {min_ratio})")
sys.exit(0 if worst >= min_ratio else 1)
PY
