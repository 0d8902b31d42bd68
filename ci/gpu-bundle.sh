#!/usr/bin/env bash
# Builds both CUDA features here without a GPU and prepares issue 25's GPU check for a machine with an NVIDIA GPU, a
# CUDA 13 driver and CUDA's libraries but no Rust toolchain and no network.
#
#   bash ci/gpu-bundle.sh [--no-rehearsal] [--candle-only]
#
# 1. candle's CUDA backend (`--features cuda`), its CUDA libraries opened at run time (ci/candle-cuda-loading.sh):
#    checked to link none of them and to start with none of them present, saying why there is no CUDA device.
# 2. llama.cpp's CUDA backend (`--features llamacpp-cuda`), a second binary: llama.cpp is built as shared libraries
#    (LLAMA_BUILD_SHARED_LIBS=1: libllama, libggml, libggml-base, libggml-cpu, libggml-cuda) linking CUDA's runtime,
#    cuBLAS and the driver dynamically, since NVIDIA's wheels ship no static cuBLAS; so it needs libcudart.so.13,
#    libcublas.so.13 and the driver to start, and its libraries travel beside it. (One binary with both features
#    would resolve llama.cpp's build dependencies differently and compile llama.cpp's CUDA kernels a second time.)
# 3. Stages both, stripped, with the default model and ci/gpu-run.sh: one xz tarball split into pieces of at most
#    60 MiB under .gpu/a, .gpu/b, … (git-ignored), since one transfer to such a machine carries at most 64 MiB.
#    (`--candle-only` stops after step 1: .ci/run's fallback when a cold cache leaves no time for llama.cpp's CUDA
#    build, 37 min here, which a warm cache skips.)
# 4. Rehearses gpu-run.sh here with the driver's stub on LD_LIBRARY_PATH: every CUDA cell must be refused as absent,
#    every CPU cell measured, so the GPU machine's few minutes are not spent on a script that was never run.
#
# On the GPU machine (the developers' `device` tool: each call carries the working tree plus at most 64 MiB), one
# call per piece, back to back so the machine stays warm; the last one runs:
#   carry [".gpu/a"]:  mkdir -p /tmp/eb && cp .gpu/a/* /tmp/eb/
#   …
#   carry [".gpu/X"]:  cp .gpu/X/* /tmp/eb/ && bash /tmp/eb/gpu-run.sh "$OUT"
# then read $OUT/results.json, run.txt, backends.txt, device.txt and environment.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgebench-ci/target}"
rehearse=1 llama=1
for a in "$@"; do
    case "$a" in
        --no-rehearsal) rehearse=0 ;;
        --candle-only) llama=0 ;;
        *) echo "gpu-bundle.sh: unknown argument $a (expected --no-rehearsal, --candle-only)" >&2; exit 2 ;;
    esac
done
eval "$(bash ci/install-cuda-toolkit.sh link)"
rel="$CARGO_TARGET_DIR/release"
# The GPU machine's CPU is not this one: llama.cpp's CPU side is built for the x86-64-v3 fallback of
# .cargo/config.toml, not for this CPU's extensions (.ci/run exports those for its own llama.cpp builds).
for v in $(compgen -e | grep '^GGML_' || true); do unset "$v"; done

echo "== candle's CUDA backend, its libraries opened at run time"
# candle's CUDA backend and the native one; ort and tract need their own libraries and stay out of these binaries.
cargo build --release -p edgebench --no-default-features --features cuda "$(bash ci/candle-cuda-loading.sh)"
if readelf -d "$rel/edgebench" | grep -E 'NEEDED.*(cuda|cublas|curand|nvrtc)'; then
    echo "the candle CUDA binary links CUDA's libraries: it would not start without them" >&2
    exit 2
fi
says="$(env -u LD_LIBRARY_PATH "$rel/edgebench" backends)"
echo "$says" | grep '^candle'
echo "$says" | grep -q 'no CUDA device (unsupported: no CUDA driver here: libcuda.so.1 cannot be opened' || {
    echo "without CUDA's libraries, edgebench backends did not say there is no CUDA driver" >&2
    exit 2
}

[ "$llama" = 1 ] || exit 0

rm -rf .gpu
stage=.gpu/stage
mkdir -p "$stage/lib"
strip -o "$stage/edgebench" "$rel/edgebench"

echo "== llama.cpp's CUDA backend (llama.cpp as shared libraries), the second binary"
export LLAMA_BUILD_SHARED_LIBS=1
cargo build --release -p edgebench --no-default-features --features llamacpp-cuda
strip -o "$stage/edgebench-llamacpp" "$rel/edgebench"
# llama.cpp's libraries the binary needs, and theirs, by soname, from the build that made them (the newest
# llama-cpp-sys-2 build with a CUDA library: the copies beside the binary are links that point nowhere).
libdir="$(dirname "$(ls -t "$rel"/build/llama-cpp-sys-2-*/out/lib/libggml-cuda.so.0 | head -1)")"
need=("$stage/edgebench-llamacpp")
while [ "${#need[@]}" -gt 0 ]; do
    for so in $(readelf -d "${need[0]}" | sed -n 's/.*NEEDED.*\[\(lib\(llama\|ggml\)[^]]*\)\].*/\1/p'); do
        if [ ! -e "$stage/lib/$so" ]; then
            strip -o "$stage/lib/$so" "$(readlink -f "$libdir/$so")"
            need+=("$stage/lib/$so")
        fi
    done
    need=("${need[@]:1}")
done
ls "$stage/lib/"libggml-cuda* >/dev/null || { echo "llama.cpp's CUDA library was not built" >&2; exit 2; }
model="$("$stage/edgebench" models fetch)"
cp "$model" "$stage/"
cp ci/gpu-run.sh "$stage/"
du -sh "$stage"/* "$stage"/lib/*
# The model barely compresses; the binaries shrink ~6x.
tar -C "$stage" -cf - . | xz -T0 -3 >.gpu/payload.tar.xz
rm -rf "$stage"
(cd .gpu && split -b 60M -d -a 2 payload.tar.xz payload.tar.xz.)
sum="$(cd .gpu && sha256sum payload.tar.xz)"
rm .gpu/payload.tar.xz
pieces=(.gpu/payload.tar.xz.*)
names=(a b c d e f g h)
for i in "${!pieces[@]}"; do
    mkdir -p ".gpu/${names[$i]}"
    mv "${pieces[$i]}" ".gpu/${names[$i]}/"
done
echo "$sum" >.gpu/a/payload.sha256
cp ci/gpu-run.sh .gpu/a/
du -sh .gpu/*

[ "$rehearse" = 1 ] || exit 0
echo "== rehearsal here, with the driver stub (no GPU): CUDA cells refused, CPU cells measured"
mkdir -p .gpu/eb
cp .gpu/[a-h]/* .gpu/eb/
EDGEBENCH_GPU_LIBS="$CUDA_ROOT/lib:$EDGEBENCH_CUDA_STUB" GPU_RUN_SUITE=quick bash .gpu/eb/gpu-run.sh .gpu/rehearsal
rm -rf .gpu/eb
grep -q 'candle cuda:0 [a-z0-9]*: not compared (GPU cell skipped' .gpu/rehearsal/greedy.txt || { echo "greedy.txt: no comparison line" >&2; exit 2; }
grep -q "^llamacpp .*no cuda device (unsupported: no cuda:0 here: llama.cpp's GPU backend found 0 GPU(s)" \
    .gpu/rehearsal/backends.txt || {
    echo "backends.txt: llama.cpp's build does not say it found no CUDA device" >&2
    exit 2
}
python3 - .gpu/rehearsal/results-candle.json .gpu/rehearsal/results-llamacpp.json <<'EOF'
import json, sys
cells = [c for f in sys.argv[1:] for c in json.load(open(f))["cells"]]
for c in cells:
    k = c["key"]
    print(f'{k["backend"]:<8} {k["device"]:<8} {c["status"]:<8} {c.get("reason", "")[:150]}')
cuda = [c for c in cells if c["key"]["device"].startswith("cuda")]
cpu = [c for c in cells if c["key"]["device"] == "cpu"]
backends = {c["key"]["backend"] for c in cells}
assert backends == {"candle", "llamacpp"}, f"backends run: {backends}"
assert {c["key"]["backend"] for c in cuda} == backends and all(c["status"] == "skipped" for c in cuda), \
    "a CUDA cell was not refused without a GPU"
assert {c["key"]["backend"] for c in cpu} == backends and all(c["status"] == "ok" for c in cpu), \
    "a CPU cell did not run"
assert all((c.get("drift") or {}).get("status") == "measured" for c in cpu), "a CPU cell has no drift against the f32 reference"
print("rehearsal: every CUDA cell refused without a GPU, every CPU cell measured (candle and llama.cpp)")
EOF
