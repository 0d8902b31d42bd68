#!/usr/bin/env bash
# Runs on the GPU machine (issue 25, part 2), from the repository root with the two parts ci/gpu-bundle.sh staged in
# .gpu/a and .gpu/b: joins and checks the model, finds CUDA's libraries, and writes into OUTDIR what the device,
# the backends and the standard suite say, on cuda:0 and on the CPU.
#
#   bash .gpu/a/gpu-run.sh OUTDIR
#
# EDGEBENCH_GPU_LIBS: the folders holding libcudart/libcublas/libcurand/libnvrtc (default: the first found of CUDA's
# pip packages and /usr/local/cuda); GPU_RUN_SUITE: the suite (default standard); GPU_RUN_THREADS: the CPU cells'
# threads (default: every CPU).
set -euo pipefail
out="${1:?usage: gpu-run.sh OUTDIR}"
mkdir -p "$out"
here="$(cd "$(dirname "$0")" && pwd)"
model=/tmp/edgebench-model/$(awk '{print $2}' "$here/model.sha256")
mkdir -p "$(dirname "$model")"
if ! (cd "$(dirname "$model")" && sha256sum --status -c "$here/model.sha256" 2>/dev/null); then
    cat "$here/model.part1" "$here/../b/model.part2" >"$model"
    (cd "$(dirname "$model")" && sha256sum -c "$here/model.sha256") || { echo "the model's parts do not join" >&2; exit 2; }
fi
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
export LD_LIBRARY_PATH="${EDGEBENCH_GPU_LIBS:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
eb=/tmp/edgebench-gpu/edgebench
mkdir -p "$(dirname "$eb")"
xz -dc "$here/edgebench.xz" >"$eb" 2>/dev/null ||
    python3 -c 'import lzma, sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$here/edgebench.xz" >"$eb"
chmod +x "$eb"
{
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    ldd "$eb" | grep -E 'cuda|cublas|curand|nvrtc' || true
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
} >"$out/environment.txt" 2>&1
"$eb" device >"$out/device.txt" 2>&1 || true
"$eb" backends >"$out/backends.txt" 2>&1 || true
threads="${GPU_RUN_THREADS:-$(nproc)}"
# One run: the CUDA cells and the CPU cells side by side, with energy (NVML for cuda:0) and the drift check.
"$eb" run --suite "${GPU_RUN_SUITE:-standard}" --backend candle --device cuda:0,cpu --threads "$threads" \
    --model "$model" --out "$out/results.json" --force >"$out/run.txt" 2>&1 || echo "run exit $?" >>"$out/run.txt"
tail -n 40 "$out/run.txt"
