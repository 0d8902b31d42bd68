#!/usr/bin/env bash
# Sourced by the llama.cpp tool scripts: where their builds and outputs live, build dependencies, an edgebench binary
# with llama.cpp compiled in, and the model.
#
#   $cache                                    llama.cpp tools, their builds and parity outputs (created)
#   prepare_edgebench_llamacpp [MODEL.gguf]   sets $eb (the binary: $EDGEBENCH_BIN if set, else a release build with
#                                             feature llamacpp) and $model (MODEL.gguf, else the default model)
cache="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/llama-bench"
mkdir -p "$cache"

prepare_edgebench_llamacpp() {
    bash ci/install-build-deps.sh
    if [ -n "${EDGEBENCH_BIN:-}" ]; then
        eb="$EDGEBENCH_BIN"
    else
        cargo build --release --features llamacpp --quiet
        eb=${CARGO_TARGET_DIR:-target}/release/edgebench
    fi
    model="${1:-$("$eb" models fetch)}"
    [ -f "$model" ] || { echo "no model file at $model" >&2; exit 2; }
}
