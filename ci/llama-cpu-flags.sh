#!/usr/bin/env bash
# Prints `export GGML_<ISA>=ON|OFF` lines for every x86-64 instruction-set option of llama.cpp's CPU backend, ON
# exactly where this machine's CPU (/proc/cpuinfo) has the extension: the kernels llama.cpp's own default build
# (GGML_NATIVE=ON, -march=native) compiles here. llama-cpp-sys-2 always configures GGML_NATIVE=OFF but passes GGML_*
# environment variables on to CMake, so
#
#   eval "$(bash ci/llama-cpu-flags.sh)"; cargo build --release --features llamacpp
#
# builds edgebench's llamacpp backend for this CPU (the values win over the x86-64-v3 baseline of .cargo/config.toml).
# The binary then needs a CPU with the same extensions; the backend refuses to run where one is missing. Elsewhere than
# x86-64 Linux it prints nothing (the baseline stays).
set -euo pipefail
[ "$(uname -m)" = x86_64 ] && [ -r /proc/cpuinfo ] || exit 0
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() {
    local f
    for f in "$@"; do
        case "$flags" in *" $f "*) ;; *) return 1 ;; esac
    done
}
emit() {
    local name=$1
    shift
    if has "$@"; then echo "export GGML_$name=ON"; else echo "export GGML_$name=OFF"; fi
}
emit SSE42 sse4_2
emit AVX avx
emit AVX2 avx2
emit FMA fma
emit F16C f16c
emit BMI2 bmi2
emit AVX_VNNI avx_vnni
# GGML_AVX512 compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
emit AVX512 avx512f avx512cd avx512vl avx512dq avx512bw
emit AVX512_VBMI avx512f avx512vbmi
emit AVX512_VNNI avx512f avx512_vnni
emit AVX512_BF16 avx512f avx512_bf16
emit AMX_TILE amx_tile
emit AMX_INT8 amx_tile amx_int8
emit AMX_BF16 amx_tile amx_bf16
