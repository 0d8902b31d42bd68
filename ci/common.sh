#!/usr/bin/env bash
# Sourced by the llama.cpp tool scripts: where their builds and outputs live, build dependencies, an edgebench binary
# with llama.cpp compiled in, and the model.
#
#   $cache                                    llama.cpp tools, their builds and parity outputs (created)
#   prepare_edgebench_llamacpp [MODEL.gguf]   sets $eb (the binary: $EDGEBENCH_BIN if set, else a release build with
#                                             feature llamacpp) and $model (MODEL.gguf, else the default model);
#                                             exports the GGML_* flags of ci/llama-cpu-flags.sh (llama.cpp built for
#                                             this CPU, as its own default build is), which the llama.cpp tools of
#                                             ci/build-llama-tools.sh's `edgebench` flavour use too
cache="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/llama-bench"
mkdir -p "$cache"

prepare_edgebench_llamacpp() {
    bash ci/install-build-deps.sh
    eval "$(bash ci/llama-cpu-flags.sh)"
    if [ -n "${EDGEBENCH_BIN:-}" ]; then
        eb="$EDGEBENCH_BIN"
    else
        cargo build --release --features llamacpp --quiet
        eb=${CARGO_TARGET_DIR:-target}/release/edgebench
    fi
    model="${1:-$("$eb" models fetch)}"
    [ -f "$model" ] || { echo "no model file at $model" >&2; exit 2; }
}

# Prints the python of a virtual environment with the pinned packages the ONNX checks use (onnx.checker, ONNX
# Runtime's Python API of the same version as the library the ort backend loads), made once under the cache.
python_env() {
    local venv="${EDGEBENCH_CACHE:-$HOME/.cache/edgebench}/python-ci"
    local want="onnx==1.23.2 onnxruntime==1.31.1 numpy==2.4.6"
    if [ "$(cat "$venv/.pinned" 2>/dev/null)" != "$want" ]; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $want >&2
        echo "$want" >"$venv/.pinned"
    fi
    echo "$venv/bin/python"
}
