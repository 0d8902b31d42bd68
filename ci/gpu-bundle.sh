#!/usr/bin/env bash
# Prepares issue 25's GPU check for a machine with an NVIDIA GPU, a CUDA 13 driver and CUDA's libraries but no Rust
# toolchain and no network: builds the edgebench binary with candle's CUDA backend here (ci/install-cuda-toolkit.sh
# link: compilers, cuBLAS/cuRAND/NVRTC to link against and a driver stub), strips it, and stages it with the default
# model and ci/gpu-run.sh under .gpu/ (git-ignored), in two parts of at most 60 MiB each, since one transfer to such a
# machine carries at most 64 MiB: part 1 (.gpu/a) the binary, the script, the model's SHA-256 and its first piece;
# part 2 (.gpu/b) the rest of the model. Then rehearses the run here with the stub driver on LD_LIBRARY_PATH (every
# CUDA cell must be refused as absent, the CPU cells must run), so the GPU machine's few minutes are not spent on a
# script that was never run.
#
#   bash ci/gpu-bundle.sh [--no-rehearsal]
#
# On the GPU machine (the developers' `device` tool: each call carries the working tree plus at most 64 MiB), two
# calls back to back, so the machine is still warm for the second:
#   1. carry [".gpu/a"]:  cp -r .gpu/a /tmp/edgebench-part-a
#   2. carry [".gpu/b"]:  mkdir -p .gpu && cp -r /tmp/edgebench-part-a .gpu/a && bash .gpu/a/gpu-run.sh "$OUT"
# then read $OUT/results.json, run.txt, backends.txt, device.txt and environment.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgebench-ci/target}"
eval "$(bash ci/install-cuda-toolkit.sh link)"
# candle's CUDA backend and the native one; ort and tract need their own libraries and stay out of this binary.
cargo build --release -p edgebench --no-default-features --features cuda
rm -rf .gpu
mkdir -p .gpu/a .gpu/b
# Stripped, the binary is ~77 MB (candle-kernels' PTX text and sm_90a objects); xz makes it ~12 MB.
strip -o .gpu/edgebench "$CARGO_TARGET_DIR/release/edgebench"
xz -T0 -6 -c .gpu/edgebench >.gpu/a/edgebench.xz
cp ci/gpu-run.sh .gpu/a/
model="$(LD_LIBRARY_PATH="$CUDA_ROOT/lib:$EDGEBENCH_CUDA_STUB" .gpu/edgebench models fetch)"
rm .gpu/edgebench
(cd "$(dirname "$model")" && sha256sum "$(basename "$model")") >.gpu/a/model.sha256
bin_mib=$(($(stat -c %s .gpu/a/edgebench.xz) / 1048576 + 1))
first=$((60 - bin_mib - 1))
[ "$first" -gt 0 ] || { echo "the binary alone is ${bin_mib} MiB: no room for the model in part 1" >&2; exit 2; }
head -c "$((first * 1048576))" "$model" >.gpu/a/model.part1
tail -c "+$((first * 1048576 + 1))" "$model" >.gpu/b/model.part2
[ "$(stat -c %s .gpu/b/model.part2)" -le $((60 * 1048576)) ] || { echo "the model does not fit in two parts" >&2; exit 2; }
du -sh .gpu/a .gpu/b

[ "${1:-}" = --no-rehearsal ] && exit 0
echo "== rehearsal here, with the driver stub (no GPU): CUDA cells refused, CPU cells measured"
rm -rf .gpu/rehearsal
EDGEBENCH_GPU_LIBS="$CUDA_ROOT/lib:$EDGEBENCH_CUDA_STUB" GPU_RUN_SUITE=quick bash .gpu/a/gpu-run.sh .gpu/rehearsal
python3 - .gpu/rehearsal/results.json <<'EOF'
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
for c in cells:
    k = c["key"]
    print(f'{k["backend"]:<8} {k["device"]:<8} {c["status"]:<8} {c.get("reason", "")[:150]}')
cuda = [c for c in cells if c["key"]["device"].startswith("cuda")]
cpu = [c for c in cells if c["key"]["device"] == "cpu"]
assert cuda and all(c["status"] == "skipped" for c in cuda), "a CUDA cell was not refused without a GPU"
assert cpu and all(c["status"] == "ok" for c in cpu), "a CPU cell did not run"
print("rehearsal: every CUDA cell refused without a GPU, every CPU cell measured")
EOF
