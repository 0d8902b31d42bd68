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

python3 ci/parity_summary.py "$out" "$rounds" "$min_ratio" "tract API" | tee "$out/table.txt"
