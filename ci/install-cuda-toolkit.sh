#!/usr/bin/env bash
# Installs a CUDA 13.0 toolkit from NVIDIA's PyPI wheels (SHA-256 pinned, cached) and prints the `export` lines that
# build the CUDA features against it, for `eval "$(bash ci/install-cuda-toolkit.sh [link])"`. No GPU and no driver
# are needed: the toolkit compiles the kernels (for Hopper, sm_90, only) and nothing here runs them.
#
#   (default) compile: nvcc (ptxas, fatbinary, nvlink), its front-end headers (crt), NVVM (cicc, libdevice), the CUDA
#             runtime (headers, libcudart) and CCCL (CUB, Thrust, libcu++): 104 MB of wheels, laid out as one
#             CUDA installation (bin/, include/, lib/, nvvm/) under $EDGEBENCH_CACHE/cuda-13.0.88/toolkit —
#             enough to compile every crate of the `cuda` feature (`cargo build -p edgebench-backend-candle
#             --features cuda`)
#   link:     also cuBLAS, cuRAND and NVRTC (the shared libraries a candle CUDA binary links: 571 MB of wheels, cuBLAS
#             most of it; 1.2 GB installed in all) and a link-time stub of the driver, libcuda.so.1, made from the toolkit's own cuda.h:
#             every driver function returns CUDA_ERROR_STUB_LIBRARY (34), as NVIDIA's own stubs do. The stub is in
#             the link path only; where a binary runs, the real driver answers (or, with the stub put on
#             LD_LIBRARY_PATH on purpose, every CUDA device is refused as absent).
#
# Output: CUDA_ROOT / CUDA_PATH / CUDA_HOME (the tree), PATH (its bin/ first), CUDA_COMPUTE_CAP=90 (candle-kernels'
# target), CMAKE_CUDA_ARCHITECTURES=90 (llama.cpp's CMake build: llama-cpp-sys-2 forwards CMAKE_* variables); with
# `link`, LIBRARY_PATH (the libraries and the stub, for the linker) and EDGEBENCH_CUDA_STUB (the stub's folder).
set -euo pipefail
version=13.0.88
root="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/cuda-$version"
tk="$root/toolkit"

# install NAME REQUIREMENTS: downloads the pinned wheels (pip checks each against its hash) and unpacks their CUDA tree
# into $tk, once.
install() {
    local name="$1" req="$2" dir="$root/wheels-$1"
    [ -f "$root/.complete-$name" ] && return 0
    rm -rf "$dir" "$root/unpacked"
    mkdir -p "$dir"
    echo "$req" >"$dir/requirements.txt"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: --require-hashes \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 \
        --platform manylinux2010_x86_64 --platform manylinux_2_27_x86_64 -r "$dir/requirements.txt" -d "$dir" >&2
    for w in "$dir"/*.whl; do
        python3 -m zipfile -e "$w" "$root/unpacked" >&2
    done
    mkdir -p "$tk"
    cp -a "$root/unpacked/nvidia/cu13/." "$tk/"
    rm -rf "$root/unpacked" "$dir"/*.whl
    touch "$root/.complete-$name"
}

install compile "\
nvidia-cuda-nvcc==13.0.88 --hash=sha256:56fe502eb77625a12f25172caa3cdddb4e4c8ba2c8c17dba44b164761b380f03
nvidia-cuda-crt==13.0.88 --hash=sha256:2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4
nvidia-nvvm==13.0.88 --hash=sha256:c5f41ffeb6466944a026dfa5317d7d85355c119bbec279205d22f1869d1054e0
nvidia-cuda-runtime==13.0.96 --hash=sha256:7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
nvidia-cuda-cccl==13.0.85 --hash=sha256:e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
# zip archives carry no execute bits.
chmod +x "$tk"/bin/* "$tk"/nvvm/bin/* 2>/dev/null || true
"$tk/bin/nvcc" --version >/dev/null
cat <<EOF
export CUDA_ROOT="$tk" CUDA_PATH="$tk" CUDA_HOME="$tk"
export PATH="$tk/bin:\$PATH"
export CUDA_COMPUTE_CAP=90 CMAKE_CUDA_ARCHITECTURES=90
EOF

[ "${1:-}" = link ] || exit 0
install link "\
nvidia-cublas==13.0.2.14 --hash=sha256:0cf238ffdbe46c00cb9aa98e7bca745c223a5ca5a53e686ac8b3e5a08fe80d6c
nvidia-curand==10.4.0.35 --hash=sha256:1aee33a5da6e1db083fe2b90082def8915f30f3248d5896bcec36a579d941bfc
nvidia-cuda-nvrtc==13.0.88 --hash=sha256:ad9b6d2ead2435f11cbb6868809d2adeeee302e9bb94bcf0539c7a40d80e8575"
stub="$root/driver-stub"
if [ ! -f "$stub/libcuda.so.1" ]; then
    mkdir -p "$stub"
    # Every driver function cuda.h declares, by the names the preprocessor gives them (the versioned ones, cuFoo_v2).
    gcc -E -I"$tk/include" "$tk/include/cuda.h" | grep -oP '\bcu[A-Za-z0-9_]+(?=\s*\()' | sort -u |
        awk '{ printf "int %s(void) { return 34; }\n", $1 }' >"$stub/stub.c"
    gcc -shared -fPIC -o "$stub/libcuda.so.1" -Wl,-soname,libcuda.so.1 "$stub/stub.c"
    ln -sf libcuda.so.1 "$stub/libcuda.so"
fi
# Where CMake's FindCUDAToolkit looks for the driver's stub (llama.cpp's CUDA backend links CUDA::cuda_driver).
mkdir -p "$tk/lib/stubs"
ln -sf "$stub/libcuda.so" "$tk/lib/stubs/libcuda.so"
# A link line asks for libNAME.so; the wheels ship the sonames only.
for so in "$tk"/lib/lib*.so.[0-9]*; do
    base="${so%%.so.*}.so"
    [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
done
cat <<EOF
export LIBRARY_PATH="$tk/lib:$stub\${LIBRARY_PATH:+:\$LIBRARY_PATH}" EDGEBENCH_CUDA_STUB="$stub"
EOF
