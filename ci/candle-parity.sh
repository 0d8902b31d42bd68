#!/usr/bin/env bash
# edgebench's candle backend against candle's own path for the same file: candle-transformers 0.11.1's quantized
# llama (`ModelWeights::from_gguf`, what candle's examples run), timed by backends/candle/examples/candle_reference.rs on
# llama-bench's pp512 and tg128 as edgebench's `standard` suite times them. Same candle-core, same threads (rayon's
# pool, from RAYON_NUM_THREADS), alternating ABBA for ROUNDS rounds; the verdict per figure is the median of the
# per-round ratios edgebench/candle-transformers.
#
#   ci/candle-parity.sh [MODEL.gguf] [THREADS=1,2] [ROUNDS=2]     env: EDGEBENCH_BIN, REPS (5), MIN_RATIO (0.95)
#
# Builds the reference with `--features parity` (candle-transformers: about 6.5 minutes of a cold 2-core build, so
# it is not in .ci/run). Exit 0 when every ratio is at least MIN_RATIO, 1 otherwise, 2 on error.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${2:-1,2}"
rounds="${3:-2}"
reps="${REPS:-5}"
min_ratio="${MIN_RATIO:-0.95}"
target="${CARGO_TARGET_DIR:-target}"

cargo build --release --quiet -p edgebench-backend-candle --features parity --example candle_reference
ref="$target/release/examples/candle_reference"
if [ -n "${EDGEBENCH_BIN:-}" ]; then
    eb="$EDGEBENCH_BIN"
else
    cargo build --release --quiet
    eb="$target/release/edgebench"
fi
model="${1:-$("$eb" models fetch)}"
[ -f "$model" ] || { echo "no model file at $model" >&2; exit 2; }

out="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/candle-parity/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
echo "model: $model; threads: $threads; rounds: $rounds; raw results: $out"

run_reference() {
    echo "round $1: candle-transformers"
    local t
    for t in ${threads//,/ }; do
        RAYON_NUM_THREADS="$t" "$ref" "$model" --reps "$reps" >>"$out/reference-$1.jsonl"
    done
}
run_edgebench() {
    echo "round $1: edgebench"
    "$eb" run --suite standard --backend candle --model "$model" --threads "$threads" --repetitions "$reps" \
        --drift off --force --format json --out "$out/edgebench-$1.json" >/dev/null
}
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        run_reference "$r"; run_edgebench "$r"
    else
        run_edgebench "$r"; run_reference "$r"
    fi
done

python3 ci/parity_summary.py "$out" "$rounds" "$min_ratio" "candle-transformers" | tee "$out/table.txt"
