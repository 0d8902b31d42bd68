#!/usr/bin/env bash
# The ort backend against ONNX Runtime's own LLM toolchain, onnxruntime-genai (its model builder and its generator),
# on the same GGUF file and the same ONNX Runtime version (1.31.1), same machine, one after the other. A measurement,
# not a gate: exits 0 unless something fails.
#
# Builds, once each (cached under ~/.cache/edgebench/genai/, see ci/ort_genai_build.py), a venv with pinned
# onnxruntime-genai and the builder's dependencies, and three builder outputs of the model:
#   equal-f32   accuracy_level=1 (f32 activations, as the ort backend's default), last-token LM head, f32 LM head
#   equal-int8  accuracy_level=4 (int8 activations), last-token LM head, int8 LM head
#   default     the builder's plain `-p int4 -e cpu` output
# Then, ROUNDS times, runs edgebench's `standard` suite (pp512, tg128) on the ort backend and ci/ort_genai_timing.py
# on each build, in the order edgebench, equal-f32, equal-int8, default, reversed every other round. Prints, per
# thread count and figure, the medians over rounds of each one's t/s and of the per-round ratios edgebench/genai.
# Raw outputs stay in ~/.cache/edgebench/genai/parity-<date>/.
#
# This machine may be shared: log.txt records, for each step, the share of all CPUs that other processes used while
# it ran (CPU time of the whole machine less the step's own), and the script warns when it passed 10%. WAIT_IDLE=S
# makes each step first wait up to S seconds for the CPUs to be under 10% busy.
#
# QUANT=Q4_0 (or another `edgebench models quantize --to` type) runs both sides on edgebench's copy of the default
# model in that type instead of the file itself; Q4_0 is the like-for-like case: both graphs then carry symmetric
# 4-bit blocks of 32, without Q4_1's block minimums (which only edgebench's exact export carries).
#
# EDGEBENCH_OPTS adds arguments to edgebench's runs, e.g. "--backend-opt ort:accuracy_level=1" for the
# f32-activation export, the one to read against `equal-f32`.
#
# Then (DRIFT=1, the default; DRIFT=0 skips it) edgebench's own drift check (`--suite accuracy`: the full built-in
# set against the f32 reference of the file's weights) on its export and on each builder output, the latter run by
# the ort backend itself (`--backend-opt ort:genai_model=DIR`), so each speed above has its cost in accuracy beside it.
#
# usage: ci/ort-genai-parity.sh [THREADS...]   (default: 1 2); env: EDGEBENCH_BIN, QUANT, EDGEBENCH_OPTS, REPS (5),
# ROUNDS (2), WAIT_IDLE (0), DRIFT (1)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=("$@")
[ $# -eq 0 ] && threads=(1 2)
bin="${EDGEBENCH_BIN:-$HOME/.cache/edgebench-ci/target/release/edgebench}"
reps="${REPS:-5}"
rounds="${ROUNDS:-2}"
wait_idle="${WAIT_IDLE:-0}"
genai="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/genai"
configs=(equal-f32 equal-int8 default)

# Prints the python of a venv under $genai with these pins, made again when they change. PyPI's torch for Linux is
# the CUDA build (no CPU-only wheel there); the builder only uses it on the CPU.
genai_env() {
    local venv="$genai/venv"
    local want="onnxruntime-genai==0.18.0 onnxruntime==1.31.1 numpy==2.4.6 torch==2.15.0 transformers==5.24.0"
    want+=" onnx==1.23.2 onnx-ir==1.1.0 gguf==0.19.0"
    if [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$want" ]; then
        rm -rf "$venv"
        mkdir -p "$genai"
        python3 -m venv "$venv" >&2
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2
        "$venv/bin/python" -m pip freeze --disable-pip-version-check >"$venv/freeze.txt"
        echo "$want" >"$venv/.pinned"
    fi
    echo "$venv/bin/python"
}

# Percent of all CPUs busy over one second (from /proc/stat): other work on the machine skews every figure.
busy() {
    local a b
    read -ra a </proc/stat
    sleep 1
    read -ra b </proc/stat
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    local idle=$((b[4] - a[4] + b[5] - a[5]))
    echo $(((100 * (total - idle)) / (total > 0 ? total : 1)))
}

# Sets cpu_total and cpu_busy: the machine's CPU time so far, all and non-idle, in clock ticks.
cpu_now() {
    local s i
    read -ra s </proc/stat
    cpu_total=0
    for i in 1 2 3 4 5 6 7 8; do cpu_total=$((cpu_total + s[i])); done
    cpu_busy=$((cpu_total - s[4] - s[5]))
}

# Sets own: the CPU time (user + sys, in clock ticks) this shell's finished children have used so far. `times` runs in
# this shell, not a subshell, whose children would be others.
own_now() {
    times >"$out/.times"
    own=$(awk -v hz="$(getconf CLK_TCK)" 'END { n = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); n += p[1] * 60 + p[2] }
        printf "%d\n", n * hz }' "$out/.times")
}

py="$(genai_env)"
model="$("$bin" models fetch)"
model_args=()
# shellcheck disable=SC2206
extra_opts=(${EDGEBENCH_OPTS:-})
if [ -n "${QUANT:-}" ]; then
    copy="$genai/models/$(basename "$model" .gguf).${QUANT^^}.gguf"
    [ -f "$copy" ] || "$bin" models quantize --to "${QUANT^^}" "$model" "$copy" >&2
    model="$copy"
    model_args=(--model "$model")
fi
[ -f "$model" ] || { echo "no model file at $model" >&2; exit 2; }
sha="$(sha256sum "$model" | cut -c1-16)"
root="$genai/models/$sha-og$("$py" -c 'import onnxruntime_genai as og; print(og.__version__)')"
out="$genai/parity-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
echo "model $model; builds in $root; raw outputs in $out; edgebench options: ${EDGEBENCH_OPTS:-none}" >&2
echo "${EDGEBENCH_OPTS:-}" >"$out/edgebench-opts.txt"
"$py" ci/ort_genai_build.py "$model" "$root" >"$out/builds.jsonl"
cp "$genai/venv/freeze.txt" "$out/" 2>/dev/null || true

"$bin" --version >"$out/edgebench-version.txt" 2>&1 || true

tlist="$(IFS=,; echo "${threads[*]}")"
order=(edgebench "${configs[@]}")
for ((r = 1; r <= rounds; r++)); do
    seq=("${order[@]}")
    if ((r % 2 == 0)); then
        seq=()
        for ((i = ${#order[@]} - 1; i >= 0; i--)); do seq+=("${order[$i]}"); done
    fi
    for what in "${seq[@]}"; do
        deadline=$((SECONDS + wait_idle))
        while [ "$SECONDS" -lt "$deadline" ] && [ "$(busy)" -gt 10 ]; do sleep 4; done
        echo "round $r: $what (CPUs $(busy)% busy just before)" | tee -a "$out/log.txt" >&2
        cpu_now; t0=$cpu_total; b0=$cpu_busy; own_now; o0=$own
        if [ "$what" = edgebench ]; then
            "$bin" run --suite standard --backend ort "${model_args[@]}" "${extra_opts[@]}" --threads "$tlist" --repetitions "$reps" --drift off --force \
                --out "$out/r$r-edgebench.json" --format json >/dev/null
        else
            "$py" ci/ort_genai_timing.py "$root/$what" "${threads[@]}" --reps "$reps" >"$out/r$r-$what.jsonl"
        fi
        cpu_now; own_now
        others=$(((100 * (cpu_busy - b0 - (own - o0))) / (cpu_total - t0 > 0 ? cpu_total - t0 : 1)))
        echo "round $r: $what: other processes used ${others}% of the CPUs while it ran" | tee -a "$out/log.txt" >&2
        echo "{\"round\": $r, \"step\": \"$what\", \"others_pct\": $others}" >>"$out/others.jsonl"
        if [ "$others" -gt 10 ]; then
            echo "warning: round $r $what shared the CPUs with other work (${others}%); its figures are skewed" >&2
        fi
    done
done

"$py" - "$out" "$rounds" "${configs[@]}" <<'PY' | tee "$out/table.txt"
import json, statistics, sys
out, rounds, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median

def eb_figure(doc, threads, wl, key):
    cell = next((c for c in doc["cells"] if c["key"]["workload"] == wl and c["key"]["threads"] == threads), None)
    m = cell and cell.get("metrics", {}).get(key)
    if not m:
        sys.exit(f"edgebench's {wl} cell at {threads} threads has no {key}: {cell and cell.get('status')}")
    return m["summary"]["median"]

per_round = []  # [{(threads, wl): {"edgebench": x, cfg: y, ...}}]
for r in range(1, rounds + 1):
    eb = json.load(open(f"{out}/r{r}-edgebench.json"))
    fig = {}
    for cfg in configs:
        for line in open(f"{out}/r{r}-{cfg}.jsonl"):
            g = json.loads(line)
            for wl, key, gk in (("pp512", "prefill_tps", "pp512_tps"), ("tg128", "decode_tps", "tg128_tps")):
                d = fig.setdefault((g["threads"], wl), {"edgebench": eb_figure(eb, g["threads"], wl, key)})
                d[cfg] = g[gk]
    per_round.append(fig)

keys = sorted(per_round[0])
summary = []
w = max(10, *(len(c) for c in configs))
head = f"{'threads':>7} {'figure':>10} {'edgebench':>10} " + " ".join(f"{c:>{w}}" for c in configs)
head += " " + " ".join(f"{'eb/' + c:>{w + 3}}" for c in configs)
print(f"t/s, medians over {rounds} round(s); ratio = median of per-round edgebench/genai")
print(head)
for k in keys:
    row = {"threads": k[0], "figure": k[1], "edgebench_tps": med(f[k]["edgebench"] for f in per_round)}
    for c in configs:
        row[f"{c}_tps"] = med(f[k][c] for f in per_round)
        row[f"ratio_{c}"] = med(f[k]["edgebench"] / f[k][c] for f in per_round)
    summary.append(row)
    line = f"{k[0]:>7} {k[1] + ' t/s':>10} {row['edgebench_tps']:>10.2f} "
    line += " ".join(f"{row[c + '_tps']:>{w}.2f}" for c in configs)
    line += " " + " ".join(f"{row['ratio_' + c]:>{w + 3}.3f}" for c in configs)
    print(line)
others = [json.loads(l) for l in open(f"{out}/others.jsonl")]
worst = max(others, key=lambda o: o["others_pct"])
print(f"other processes' share of the CPUs during a step: at most {worst['others_pct']}% "
      f"(round {worst['round']}, {worst['step']}); per step in log.txt")
json.dump({"rounds": rounds, "others": others, "rows": summary, "per_round": [{f"{k[0]}:{k[1]}": v for k, v in f.items()}
                                                             for f in per_round]},
          open(f"{out}/summary.json", "w"), indent=2)
PY

if [ "${DRIFT:-1}" != 0 ]; then
    for what in edgebench "${configs[@]}"; do
        echo "drift: $what" >&2
        opts=("${extra_opts[@]}")
        [ "$what" = edgebench ] || opts=(--backend-opt "ort:genai_model=$root/$what")
        "$bin" run --suite accuracy --backend ort "${model_args[@]}" "${opts[@]}" --threads "${threads[0]}" --force \
            --out "$out/drift-$what.json" --format json >/dev/null
    done
    python3 - "$out" edgebench "${configs[@]}" <<'PY' | tee -a "$out/table.txt"
import json, sys
out, names = sys.argv[1], sys.argv[2:]
print("drift against the f32 reference of the file's weights (edgebench --suite accuracy; mean ± error)")
print(f"{'model':>10} {'mean KLD':>18} {'same top-1':>16} {'PPL(Q)/PPL(base)':>18}  weights")
for n in names:
    cell = json.load(open(f"{out}/drift-{n}.json"))["cells"][0]
    d = cell.get("drift") or {}
    st = d.get("stats")
    if d.get("status") != "measured" or not st:
        sys.exit(f"{n}: drift not measured: {cell.get('status')} {d.get('status')}")
    pm = lambda v, f: f"{v['value']:{f}} ± {v['err']:{f}}"
    top = st["same_top1"]
    top_s = pm({k: 100 * top[k] for k in ("value", "err")}, ".1f") + "%"
    conv = "the builder's (re-quantized)" if (cell.get("backend") or {}).get("converted") else "the file's"
    print(f"{n:>10} {pm(st['kld'], '.4f'):>18} {top_s:>16} {pm(st['ppl_ratio'], '.3f'):>18}  {conv}")
PY
fi
