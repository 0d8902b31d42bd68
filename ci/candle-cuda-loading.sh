#!/usr/bin/env bash
# Prints the cargo `--config` argument that builds candle's CUDA backend with the CUDA libraries loaded at run time,
# for `cargo build $(bash ci/candle-cuda-loading.sh) --features cuda`.
#
# candle-core 0.11.1 asks cudarc for `dynamic-linking` and candle-kernels links libcudart.so, so a binary built with
# `--features cuda` as published does not start where libcuda.so.1, cuBLAS, cuRAND or NVRTC are missing (upstream:
# huggingface/candle issue 3900, open). cudarc's own default is `dynamic-loading` (each library opened on first use)
# and NVIDIA's runtime is also shipped static (libcudart_static.a, which itself opens the driver on first use). This
# script makes local copies of the two crates from cargo's registry with exactly those two changes — each `sed` must
# match once, or the script stops — and points cargo at them with a `paths` override, which leaves Cargo.lock and the
# dependency graph untouched (cargo warns that the override changed a dependency's features: that is the point).
# Nothing else in candle changes: its kernels, PTX and dispatch are the published ones. Needs CUDA_ROOT (the toolkit
# of ci/install-cuda-toolkit.sh, whose lib/ holds libcudart_static.a) when cargo builds.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$HOME/.cache/edgebench-ci/target}"
version_of() { awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock; }
core="candle-core-$(version_of candle-core)"
kernels="candle-kernels-$(version_of candle-kernels)"
stamp="$(sha256sum "$0" | cut -c1-12)"
out="$target/candle-cuda-loading/$stamp"
if [ ! -f "$out/.complete" ]; then
    cargo fetch --locked >&2
    src="$(dirname "$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "$core" | head -1)")"
    [ -d "$src/$core" ] && [ -d "$src/$kernels" ] || { echo "$core / $kernels not in cargo's registry" >&2; exit 2; }
    rm -rf "$target/candle-cuda-loading"
    mkdir -p "$out"
    cp -a "$src/$core" "$src/$kernels" "$out/"
    # replace FILE OLD NEW: OLD must occur on exactly one line of FILE.
    replace() {
        local n
        n="$(grep -cF -- "$2" "$1" || true)"
        [ "$n" = 1 ] || { echo "$1: expected one line with '$2', found $n (new candle version? revisit this script)" >&2; exit 2; }
        OLD="$2" NEW="$3" perl -pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/' "$1"
    }
    replace "$out/$core/Cargo.toml" '"dynamic-linking",' '"dynamic-loading",'
    replace "$out/$kernels/build.rs" 'println!("cargo:rustc-link-lib=dylib=cudart");' \
        'println!("cargo:rustc-link-search=native={}/lib", std::env::var("CUDA_ROOT").expect("CUDA_ROOT")); println!("cargo:rustc-link-lib=static=cudart_static");'
    touch "$out/.complete"
fi
echo "--config=paths=[\"$out/$core\",\"$out/$kernels\"]"
