#!/usr/bin/env bash
# The ort backend against ONNX Runtime's own Python API on the same exported graph (the export defaults, which are the
# ort backend's: the fused graph with int8 activations), same library version, same session settings, same machine:
# edgebench's `standard` suite (pp512, tg128) for the ort backend and ci/ort_python_timing.py, alternating ABBA for
# ROUNDS rounds. The verdict per figure is the median of the per-round ratios edgebench / Python (ci/parity_summary.py).
#
# usage: ci/ort-python-parity.sh [THREADS...]   (default: 1 2)
#        env: EDGEBENCH_BIN, REPS (5), ROUNDS (2), MIN_RATIO (0.75: the claim is "within 10%"; CI machines are noisy)
# Exit 0 when every ratio is at least MIN_RATIO, 1 otherwise, 2 on error.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/common.sh
threads=("${@:-1}")
[ $# -eq 0 ] && threads=(1 2)
bin="${EDGEBENCH_BIN:-target/release/edgebench}"
reps="${REPS:-5}"
rounds="${ROUNDS:-2}"
py="$(python_env)"
out="$(mktemp -d)"
"$bin" export onnx --out "$out/export" >/dev/null
"$py" ci/onnx_check.py "$out/export/model.onnx"
tlist="$(IFS=,; echo "${threads[*]}")"
echo "threads: $tlist; rounds: $rounds; raw results: $out"

run_reference() {
    echo "round $1: ONNX Runtime's Python API"
    "$py" ci/ort_python_timing.py "$out/export/model.onnx" "${threads[@]}" --reps "$reps" >"$out/reference-$1.jsonl"
}
run_edgebench() {
    echo "round $1: edgebench"
    "$bin" run --suite standard --backend ort --threads "$tlist" --repetitions "$reps" --drift off --force \
        --out "$out/edgebench-$1.json" --format json >/dev/null
}
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        run_edgebench "$r"; run_reference "$r"
    else
        run_reference "$r"; run_edgebench "$r"
    fi
done
"$py" ci/parity_summary.py "$out" "$rounds" "${MIN_RATIO:-0.75}" "Python API"
