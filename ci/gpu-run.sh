#!/usr/bin/env bash
# Runs on the GPU machine (issue 25, part 2), from the folder where the pieces ci/gpu-bundle.sh made were gathered
# (payload.tar.xz.00, .01, …, payload.sha256 and this script): joins and checks them, unpacks the two binaries
# (edgebench: candle's CUDA backend; edgebench-llamacpp: llama.cpp's, with its libraries in lib/) and the default
# model, finds CUDA's libraries, and writes into OUTDIR what the device, the backends and the standard suite say, on
# cuda:0 and on the CPU: results-candle.json, results-llamacpp.json and report.md (both in one table).
#
#   bash /tmp/eb/gpu-run.sh OUTDIR
#
# EDGEBENCH_GPU_LIBS: the folders holding libcudart/libcublas/libcurand/libnvrtc (default: the first found of CUDA's
# pip packages and /usr/local/cuda); GPU_RUN_SUITE: the suite (default standard); GPU_RUN_THREADS: the CPU cells'
# threads (default: every CPU).
set -euo pipefail
out="${1:?usage: gpu-run.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
eb=/tmp/edgebench-gpu
if ! [ -x "$eb/edgebench" ] || ! cmp -s "$here/payload.sha256" "$eb/payload.sha256"; then
    rm -rf "$eb"
    mkdir -p "$eb"
    cat "$here"/payload.tar.xz.[0-9][0-9] >"$eb/payload.tar.xz"
    (cd "$eb" && sha256sum -c "$here/payload.sha256") || { echo "the pieces do not join: one is missing or damaged" >&2; exit 2; }
    tar -C "$eb" -xJf "$eb/payload.tar.xz"
    rm "$eb/payload.tar.xz"
    cp "$here/payload.sha256" "$eb/"
fi
model="$(ls "$eb"/*.gguf | head -1)"
if [ -z "${EDGEBENCH_GPU_LIBS:-}" ]; then
    # Each library the binary needs, from the first place that has it: CUDA's pip packages (where that machine's
    # Python keeps them), then a system toolkit. The driver (libcuda.so.1) is the system's own.
    EDGEBENCH_GPU_LIBS="$(python3 - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
dirs = []
for want in ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13"]:
    for root in roots:
        hits = glob.glob(os.path.join(root, want)) + glob.glob(os.path.join(root, "nvidia", "*", "lib", want))
        if hits:
            d = os.path.dirname(hits[0])
            dirs += [d] if d not in dirs else []
            break
print(":".join(dirs))
EOF
)"
fi
export LD_LIBRARY_PATH="$eb/lib${EDGEBENCH_GPU_LIBS:+:$EDGEBENCH_GPU_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ebl="$eb/edgebench-llamacpp"
eb="$eb/edgebench"
{
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    ldd "$ebl" "$(dirname "$eb")"/lib/libggml-cuda.so* | grep -E 'cuda|cublas|llama|ggml|not found' || true
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
} >"$out/environment.txt" 2>&1
"$eb" device >"$out/device.txt" 2>&1 || true
{ "$eb" backends; "$ebl" backends; } >"$out/backends.txt" 2>&1 || true
threads="${GPU_RUN_THREADS:-$(nproc)}"
# Per backend, its CUDA cells and its CPU cells side by side, with energy (NVML for cuda:0) and the drift check;
# EDGEBENCH_LLAMACPP_LOG keeps llama.cpp's own log (its CUDA device, layers offloaded) in run-llamacpp.txt.
# The llama.cpp binary has no candle for the default drift reference: its reference is llama.cpp on the CPU running
# the model's f32 copy (every weight dequantized: the values candle's reference runs).
for b in candle llamacpp; do
    bin="$eb" ref=()
    [ "$b" = llamacpp ] && bin="$ebl" ref=(--reference-backend llamacpp --reference-model "$model@f32")
    EDGEBENCH_LLAMACPP_LOG=1 "$bin" run --suite "${GPU_RUN_SUITE:-standard}" --backend "$b" --device cuda:0,cpu \
        --threads "$threads" --model "$model" "${ref[@]}" --out "$out/results-$b.json" --force >"$out/run-$b.txt" 2>&1 ||
        echo "run exit $?" >>"$out/run-$b.txt"
    grep -v '^llama.cpp: ' "$out/run-$b.txt" | tail -n 25
done
# Greedy output on the GPU against the CPU's, per backend (same prompt, greedy sampling): equal, or where it diverges.
python3 - "$out"/results-candle.json "$out"/results-llamacpp.json >"$out/greedy.txt" 2>&1 <<'EOF' || true
import json, sys
for path in sys.argv[1:]:
    cells = json.load(open(path))["cells"]
    for gpu in (c for c in cells if c["key"]["device"].startswith("cuda")):
        cpu = [c for c in cells if c["key"]["device"] == "cpu" and c["key"]["backend"] == gpu["key"]["backend"]]
        name = f'{gpu["key"]["backend"]} {gpu["key"]["device"]}'
        if gpu["status"] != "ok" or not cpu or cpu[0]["status"] != "ok":
            print(f"{name}: not compared (GPU cell {gpu['status']}, CPU cell {cpu[0]['status'] if cpu else 'absent'})")
            continue
        a, b = gpu.get("sample_output", ""), cpu[0].get("sample_output", "")
        if a == b:
            print(f"{name}: greedy output equal to the CPU's ({len(a)} characters)")
        else:
            n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            print(f"{name}: diverges from the CPU's at character {n}: GPU {a[n:n + 40]!r} / CPU {b[n:n + 40]!r}")
EOF
cat "$out/greedy.txt"
"$eb" report "$out"/results-candle.json "$out"/results-llamacpp.json --format markdown --wide >"$out/report.md" 2>&1 || true
