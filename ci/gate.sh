#!/usr/bin/env bash
# Plain CI entry point for the regression gate: run a suite, gate it against a baseline results file, and write the
# Markdown report (for a pull-request comment) beside the results.
#
#   ci/gate.sh BASELINE.json [SUITE=quick] [OUT_DIR=results/gate] [-- extra `edgebench run` flags]
#
# Fetching the baseline is the caller's job (e.g. the results artifact of the main branch's last run on the same
# runner type; see ci/github-workflow.yml). Without a baseline file it runs, keeps the result as the next baseline
# and exits 0, saying so. Exit codes are the gate's: 0 pass, 1 regression, 2 error (including runs that differ in
# model, device or suite: compare like with like). A suspected regression is re-run once before the gate fails
# (GATE_RERUN=0 turns that off): it fails only if the fresh run regresses too.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline="${1:?usage: ci/gate.sh BASELINE.json [SUITE] [OUT_DIR] [-- run flags]}"
suite="${2:-quick}"
out_dir="${3:-results/gate}"
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
mkdir -p "$out_dir"
eb="${EDGEBENCH:-cargo run --release --quiet --}"

$eb run --suite "$suite" --force --out "$out_dir/current.json" "$@"
if [ ! -f "$baseline" ]; then
    echo "no baseline at $baseline: this run ($out_dir/current.json) can serve as the next one"
    exit 0
fi
gate() {
    set +e
    $eb gate --baseline "$baseline" --current "$1" --format markdown >"$out_dir/report.md"
    code=$?
    set -e
}
gate "$out_dir/current.json"
if [ "$code" -eq 1 ] && [ "${GATE_RERUN:-1}" = "1" ]; then
    echo "suspected regression: running the suite again to confirm"
    $eb run --suite "$suite" --force --out "$out_dir/current-rerun.json" "$@"
    gate "$out_dir/current-rerun.json"
    [ "$code" -eq 1 ] && echo "confirmed by a second run" >>"$out_dir/report.md"
fi
cat "$out_dir/report.md"
exit "$code"
