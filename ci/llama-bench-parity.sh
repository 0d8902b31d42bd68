#!/usr/bin/env bash
# Checks that edgebench's llamacpp backend reports what llama.cpp's own llama-bench reports for the same file,
# threads and llama.cpp source: pp512 and tg128. The tools alternate in ABBA order for ROUNDS rounds, so a machine
# whose speed drifts (shared VMs do, by 10% within a minute here) biases neither; the verdict is the median of the
# per-round ratios (each from two runs seconds apart).
#
#   ci/llama-bench-parity.sh [MODEL.gguf] [THREADS=1,2] [ROUNDS=4]
#
# llama-bench is built by ci/build-llama-tools.sh from the llama.cpp source edgebench links, by default the way
# llama.cpp's own README builds it (LLAMA_TOOLS_BUILD=default: cmake's defaults, GGML_NATIVE=ON, shared libraries);
# edgebench's own build (ci/common.sh) uses ci/llama-cpu-flags.sh's flags for this CPU. LLAMA_TOOLS_BUILD=edgebench
# compares with a llama-bench compiled with exactly edgebench's flags, which isolates the integration from the build.
# Exit 0 when every ratio is within ±5%, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${2:-1,2}"
rounds="${3:-4}"
. ci/common.sh
prepare_edgebench_llamacpp "${1:-}"

export LLAMA_TOOLS_BUILD="${LLAMA_TOOLS_BUILD:-default}"
bench="$(bash ci/build-llama-tools.sh llama-bench)/llama-bench"
echo "model: $model; threads: $threads; rounds: $rounds; llama-bench: $LLAMA_TOOLS_BUILD build ($bench)"

out="$cache/parity-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
run_llama_bench() {
    echo "round $1: llama-bench"
    "$bench" -m "$model" -p 512 -n 128 -t "$threads" -r 5 -lm mmap -o json >"$out/llama-bench-$1.json" 2>/dev/null
}
run_edgebench() {
    echo "round $1: edgebench"
    "$eb" run --suite standard --backend llamacpp --model "$model" --threads "$threads" \
        --out "$out/edgebench-$1.json" >/dev/null 2>&1
}
for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) -eq 1 ]; then
        run_llama_bench "$r"; run_edgebench "$r"
    else
        run_edgebench "$r"; run_llama_bench "$r"
    fi
done

python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
ratios, lb_all, eb_all = {}, {}, {}
for r in range(1, rounds + 1):
    lb, eb = {}, {}
    for t in json.load(open(f"{out}/llama-bench-{r}.json")):
        lb.setdefault(("pp512" if t["n_prompt"] == 512 else "tg128", t["n_threads"]), []).extend(t["samples_ts"])
    for c in json.load(open(f"{out}/edgebench-{r}.json"))["cells"]:
        if c.get("status") != "ok":
            sys.exit(f"edgebench cell failed: {c}")
        w = c["key"]["workload"]
        metric = "prefill_tps" if w == "pp512" else "decode_tps"
        eb.setdefault((w, c["key"]["threads"]), []).extend(c["metrics"][metric]["samples"])
    for k in lb:
        ratios.setdefault(k, []).append(statistics.median(eb[k]) / statistics.median(lb[k]))
        lb_all.setdefault(k, []).extend(lb[k])
        eb_all.setdefault(k, []).extend(eb[k])
worst = 0.0
print(f"{'test':<6} {'thr':>3} {'llama-bench t/s':>16} {'edgebench t/s':>14} {'ratio':>7}  per-round ratios")
for k in sorted(ratios):
    m = statistics.median(ratios[k])
    worst = max(worst, abs(m - 1))
    per = " ".join(f"{x:.3f}" for x in ratios[k])
    print(f"{k[0]:<6} {k[1]:>3} {statistics.median(lb_all[k]):>16.1f} {statistics.median(eb_all[k]):>14.1f} {m:>7.3f}  {per}")
print(f"t/s: medians of all {rounds} x 5 repetitions; ratio: median of per-round ratios; worst gap {worst * 100:.1f}%")
print(f"raw results: {out}")
sys.exit(0 if worst <= 0.05 else 1)
PY
