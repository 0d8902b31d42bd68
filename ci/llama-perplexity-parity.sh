#!/usr/bin/env bash
# Checks that edgebench's drift statistics match llama-perplexity's `--kl-divergence` on the same inputs: the same
# text, chunking, reference model and candidate model, both run by the same llama.cpp library.
#
#   ci/llama-perplexity-parity.sh [MODEL.gguf] [CTX=512]
#
# The reference is MODEL (default: the default model, Q4_1); the candidate is MODEL requantized to Q4_0 by
# llama-quantize (so the two differ measurably). The evaluation text is this repository's own ARCHITECTURE.md and
# docs/results-schema.md (not the README, which quotes this script's figures). llama-perplexity and llama-quantize are built by ci/build-llama-tools.sh.
# Prints every statistic side by side; exit 0 when each agrees within its tolerance (below), 1 otherwise.
# Expected: figures computed from the candidate agree to llama-perplexity's printed digits; PPL(base) and the ratios
# differ by ~0.1% because llama-perplexity stores the reference's log-probabilities as 16-bit steps clamped at
# (max logit - 16), which caps a very unlikely token's negative log-probability; edgebench stores them as f32.
set -euo pipefail
cd "$(dirname "$0")/.."
ctx="${2:-512}"
. ci/common.sh
out="$cache/perplexity-parity-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"

# EDGEBENCH_BIN: an edgebench binary built with feature llamacpp (.ci/run passes the one its tests built).
prepare_edgebench_llamacpp "${1:-}"
bin="$(bash ci/build-llama-tools.sh perplexity quantize)"
threads=$(nproc)

cat ARCHITECTURE.md docs/results-schema.md >"$out/eval.txt"
candidate="$out/candidate-Q4_0.gguf"
# The logs, the text and edgebench's results stay for inspection; the ~0.8 GB of intermediates (the Q4_0 copy,
# llama-perplexity's base log-probabilities, edgebench's cache) would otherwise pile up on a machine running CI often.
trap 'rm -rf "$out/cache" "$out/base.kld" "$candidate"' EXIT
"$bin/llama-quantize" --allow-requantize "$model" "$candidate" Q4_0 "$threads" >"$out/quantize.log" 2>&1
echo "reference: $model; candidate: $candidate (llama-quantize Q4_0); text: $out/eval.txt; ctx $ctx"

# llama-perplexity: base log-probabilities from the reference, then the candidate against them. -b = ctx so every
# chunk is one sequence per batch, as edgebench runs it.
"$bin/llama-perplexity" -m "$model" -f "$out/eval.txt" -c "$ctx" -b "$ctx" -t "$threads" \
    --kl-divergence-base "$out/base.kld" >"$out/base.log" 2>&1
"$bin/llama-perplexity" -m "$candidate" -c "$ctx" -b "$ctx" -t "$threads" \
    --kl-divergence-base "$out/base.kld" --kl-divergence >"$out/llama-perplexity.log" 2>&1

# edgebench: the same text, context, reference and candidate, every figure from the results file.
EDGEBENCH_CACHE="$out/cache" "$eb" run --suite accuracy --backend llamacpp --model "$candidate" \
    --reference-backend llamacpp --reference-model "$model" --eval-text "$out/eval.txt" --eval-ctx "$ctx" \
    --repetitions 1 --warmup 0 --out "$out/edgebench.json" >"$out/edgebench.log" 2>&1

python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
log = open(f"{out}/llama-perplexity.log", encoding="utf-8").read()
def lp(name, err=False):
    m = re.search(re.escape(name) + r"\s*:\s*(-?[\d.]+)(?:\s*±\s*(-?[\d.]+))?", log)
    if not m or (err and m.group(2) is None):
        sys.exit(f"llama-perplexity printed no '{name}'; see {out}/llama-perplexity.log")
    return float(m.group(2) if err else m.group(1))
cell = json.load(open(f"{out}/edgebench.json"))["cells"][0]
if cell.get("drift", {}).get("status") != "measured":
    sys.exit(f"edgebench measured no drift: {cell.get('drift')}; see {out}/edgebench.log")
s = cell["drift"]["stats"]
# (label, llama-perplexity value, edgebench value, tolerance). Tolerances: llama-perplexity stores the base
# log-probabilities as 16-bit steps of up to 16/65535 nats, and edgebench splits each chunk in two forward calls
# where llama-perplexity makes one; both move figures in their last digits, never by more than these.
rows = [
    ("Mean PPL(Q)", lp("Mean PPL(Q)"), s["ppl"]["value"], 2e-3),
    ("Mean PPL(base)", lp("Mean PPL(base)"), s["ppl_ref"]["value"], 2e-3),
    ("Cor(ln(PPL(Q)), ln(PPL(base))) %", lp("Cor(ln(PPL(Q)), ln(PPL(base)))"), 100 * s["ln_prob_correlation"], 2e-3),
    ("Mean ln(PPL(Q)/PPL(base))", lp("Mean ln(PPL(Q)/PPL(base))"), s["ln_ppl_ratio"]["value"], 2e-2),
    ("Mean PPL(Q)/PPL(base)", lp("Mean PPL(Q)/PPL(base)"), s["ppl_ratio"]["value"], 2e-3),
    ("Mean KLD", lp("Mean    KLD"), s["kld"]["value"], 2e-2),
    ("Maximum KLD", lp("Maximum KLD"), s["kld_distribution"]["max"], 5e-2),
    ("99.0% KLD", lp("99.0%   KLD"), s["kld_distribution"]["p99"], 5e-2),
    ("Median KLD", lp("Median  KLD"), s["kld_distribution"]["median"], 5e-2),
    ("Mean Δp %", lp("Mean    Δp"), 100 * s["delta_p"]["value"], 5e-2),
    ("RMS Δp %", lp("RMS Δp    "), 100 * s["delta_p_rms"]["value"], 2e-2),
    ("Same top p %", lp("Same top p"), 100 * s["same_top1"]["value"], 5e-3),
    # The ± figures: standard errors by the same formulas.
    ("Mean PPL(Q) error", lp("Mean PPL(Q)", True), s["ppl"]["err"], 1e-2),
    ("Mean ln(PPL(Q)/PPL(base)) error", lp("Mean ln(PPL(Q)/PPL(base))", True), s["ln_ppl_ratio"]["err"], 5e-2),
    ("Mean KLD error", lp("Mean    KLD", True), s["kld"]["err"], 1e-2),
    ("RMS Δp error %", lp("RMS Δp    ", True), 100 * s["delta_p_rms"]["err"], 5e-2),
    ("Same top p error %", lp("Same top p", True), 100 * s["same_top1"]["err"], 1e-2),
]
tokens = re.search(r"computing over (\d+) chunks", log)
print(f"tokens scored: edgebench {s['tokens']}; llama-perplexity {tokens.group(1) if tokens else '?'} chunks")
print(f"{'statistic':<36} {'llama-perplexity':>17} {'edgebench':>12} {'rel. diff':>10}  tolerance")
bad = 0
for name, a, b, tol in rows:
    rel = abs(a - b) / max(abs(a), 1e-12)
    # Figures near zero (Δp mean) compare absolutely at the precision llama-perplexity prints.
    ok = rel <= tol or abs(a - b) <= 1e-3 * (1 if "error" not in name else 0.01)
    bad += not ok
    print(f"{name:<36} {a:>17.6f} {b:>12.6f} {rel:>10.2e}  {tol:.0e} {'ok' if ok else 'DIFFERS'}")
print(f"raw: {out}")
sys.exit(1 if bad else 0)
PY
