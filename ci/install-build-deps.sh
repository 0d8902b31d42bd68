#!/usr/bin/env bash
# Installs what the `llamacpp` feature needs to build llama.cpp from source: CMake and libclang (bindgen).
# Debian/Ubuntu through apt; elsewhere it says what is missing. Does nothing when both are present.
set -euo pipefail
have_libclang() {
    [ -n "${LIBCLANG_PATH:-}" ] && return 0
    ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so' && return 0
    compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}
missing=()
command -v cmake >/dev/null || missing+=(cmake)
have_libclang || missing+=(libclang-dev)
[ ${#missing[@]} -eq 0 ] && { echo "build deps present: $(cmake --version | head -1), libclang"; exit 0; }
if ! command -v apt-get >/dev/null; then
    echo "missing: ${missing[*]} — install CMake (>= 3.14) and libclang with your package manager" >&2
    exit 2
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing with apt-get: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
