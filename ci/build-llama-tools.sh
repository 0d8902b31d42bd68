#!/usr/bin/env bash
# Builds llama.cpp command-line tools (llama-bench, llama-perplexity, llama-quantize) from the llama.cpp source
# vendored in the llama-cpp-sys-2 crate edgebench links (the same library code), as Release. That crate does not ship
# the tools' own source files, so they are taken from the llama-cpp-python sdist (pip download); the script says
# which. Prints the bin directory on stdout.
#
#   ci/build-llama-tools.sh TOOL...     (TOOL: llama-bench, perplexity, quantize — directories under tools/)
#
# LLAMA_TOOLS_BUILD picks the flags:
#   edgebench (default)  the GGML_* flags of .cargo/config.toml overridden by GGML_* variables in the environment
#                        (ci/common.sh exports ci/llama-cpu-flags.sh's), static: what edgebench's llamacpp backend
#                        compiles with the same environment; each set of flags gets its own build directory
#   default              llama.cpp's own defaults for a build on this machine (GGML_NATIVE=ON: -march=native, shared
#                        libraries), what a user who clones llama.cpp and runs cmake gets: the yardstick
#                        ci/llama-bench-parity.sh holds edgebench against
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/common.sh
sys_version=$(sed -n 's/^pub const LLAMA_CPP_SYS_VERSION: &str = "\(.*\)";/\1/p' backends/llamacpp/src/lib.rs)
lcp_version=0.3.36
flavour="${LLAMA_TOOLS_BUILD:-edgebench}"
edgebench_flags() {
    sed -n 's/^\(GGML_[A-Z0-9_]*\) = "\(.*\)"/\1=\2/p' .cargo/config.toml
    env | grep '^GGML_' | sort || true
}
case "$flavour" in
    edgebench) build="$cache/build-$sys_version-$(edgebench_flags | sha256sum | cut -c1-12)" ;;
    default) build="$cache/build-$sys_version-default" ;;
    *) echo "LLAMA_TOOLS_BUILD must be edgebench or default, not $flavour" >&2; exit 2 ;;
esac
targets=()
for t in "$@"; do
    case "$t" in
        llama-bench) targets+=(llama-bench) ;;
        perplexity) targets+=(llama-perplexity) ;;
        quantize) targets+=(llama-quantize) ;;
        *) echo "unknown tool $t" >&2; exit 2 ;;
    esac
done
missing=0
for t in "${targets[@]}"; do [ -x "$build/bin/$t" ] || missing=1; done
if [ "$missing" = 1 ]; then
    cargo fetch --quiet
    src=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "llama-cpp-sys-2-$sys_version" | head -1)
    [ -d "$src/llama.cpp" ] || { echo "llama-cpp-sys-2 $sys_version source not found" >&2; exit 2; }
    work="$cache/src-$sys_version"
    [ -d "$work/ggml" ] || cp -r "$src/llama.cpp" "$work"
    sdist="$cache/sdist/llama_cpp_python-$lcp_version.tar.gz"
    [ -f "$sdist" ] || (cd "$cache" && pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$lcp_version" -d sdist)
    # Tools extracted so far (this call's and earlier ones'), each added to the build once.
    list="$work/tools/edgebench-tools.txt"
    for t in "$@"; do
        tar -xzf "$sdist" -C "$cache" "llama_cpp_python-$lcp_version/vendor/llama.cpp/tools/$t"
        mkdir -p "$work/tools/$t"
        cp "$cache/llama_cpp_python-$lcp_version/vendor/llama.cpp/tools/$t/"*.{cpp,txt} "$work/tools/$t/"
        echo "$t" >>"$list"
    done
    sort -u "$list" | sed 's/.*/add_subdirectory(&)/' >"$work/tools/CMakeLists.txt"
    flags=()
    if [ "$flavour" = edgebench ]; then
        flags=(-DGGML_NATIVE=OFF -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF)
        # Later definitions win in CMake: the environment's override the config file's.
        for f in $(edgebench_flags); do flags+=("-D$f"); done
    fi
    cmake -S "$work" -B "$build" -DCMAKE_BUILD_TYPE=Release "${flags[@]}" -DLLAMA_CURL=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >/dev/null
    cmake --build "$build" --target "${targets[@]}" -j "$(nproc)" >/dev/null
fi
echo "llama.cpp tools ($flavour build): library from llama-cpp-sys-2 $sys_version, drivers from llama-cpp-python $lcp_version sdist" >&2
echo "$build/bin"
