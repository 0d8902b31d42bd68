#!/usr/bin/env bash
# Installs what optional parts need, through apt on Debian/Ubuntu; elsewhere it says what is missing.
#   ci/install-build-deps.sh [llamacpp] [chromium] [sshd]      (default: llamacpp)
#   llamacpp: CMake and libclang, to build llama.cpp from source (feature `llamacpp`)
#   chromium: headless Chromium, for the HTML report's render test (`cargo test -p edgebench-reports -- --ignored`)
#   sshd: OpenSSH's server, for the fleet test's loopback devices (ci/fleet-test.sh)
# Does nothing for what is already present.
set -euo pipefail
# bindgen (through clang-sys) loads libclang.so, libclang-N.so, libclang.so.N or libclang-N.so.N; libclang-cpp (the
# C++ API, shipped alone by some images) is not libclang and does not count.
libclang_name='^libclang(-[0-9][0-9.]*)?\.so(\.[0-9][0-9.]*)?$'
have_libclang() {
    [ -n "${LIBCLANG_PATH:-}" ] && return 0
    ldconfig -p 2>/dev/null | awk '{print $1}' | grep -Eq "$libclang_name" && return 0
    local f
    for f in /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/*/libclang*.so* /usr/lib64/libclang*.so*; do
        [ -e "$f" ] && basename "$f" | grep -Eq "$libclang_name" && return 0
    done
    return 1
}
missing=()
for part in "${@:-llamacpp}"; do
    case "$part" in
        llamacpp)
            command -v cmake >/dev/null || missing+=(cmake)
            have_libclang || missing+=(libclang-dev)
            ;;
        chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
        sshd) [ -x /usr/sbin/sshd ] || missing+=(openssh-server) ;;
        *) echo "unknown part $part (expected llamacpp, chromium or sshd)" >&2; exit 2 ;;
    esac
done
[ ${#missing[@]} -eq 0 ] && { echo "present: ${*:-llamacpp} dependencies"; exit 0; }
if ! command -v apt-get >/dev/null; then
    echo "missing: ${missing[*]} — install them with your package manager" >&2
    exit 2
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing with apt-get: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
