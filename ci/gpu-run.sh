#!/usr/bin/env bash
# Runs on the GPU machine (issue 25, part 2), from the folder where the pieces ci/gpu-bundle.sh made were gathered
# (payload.tar.xz.00, .01, …, payload.sha256 and this script): joins and checks them, unpacks the two binaries
# (edgebench: candle's CUDA backend; edgebench-llamacpp: llama.cpp's, with its libraries in lib/) and the default
# model, finds CUDA's libraries, and writes into OUTDIR what the device, the backends and the standard suite say, on
# cuda:0 and on the CPU: results-candle.json, results-llamacpp.json, results-llamacpp-fa-off.json (llama.cpp's CUDA
# cells with flash attention off: the drift control; GPU_RUN_FA_CONTROL=0 skips it), cells.txt (per cell: status,
# speed, GPU memory, J/token, drift, kernel path, notes), results-energy-candle.json and results-energy-llamacpp.json
# (tg1536 on cuda:0: decode long enough for NVML's energy counter), greedy.txt and report.md (all in one table).
#
#   bash /tmp/eb/gpu-run.sh OUTDIR
#
# EDGEBENCH_GPU_LIBS: the folders holding libcudart/libcublas/libcurand/libnvrtc (default: the first found of CUDA's
# pip packages and /usr/local/cuda); GPU_RUN_SUITE: the suite (default standard); GPU_RUN_THREADS: the CPU cells'
# threads (default: every CPU); GPU_RUN_STEPS: which of standard,fa-control,energy to run (default all);
# GPU_RUN_BACKEND_S: seconds each backend's run may take before it is interrupted
# (SIGINT: the cells it finished are saved; default 240), so the whole script fits the GPU machine's short lease.
set -euo pipefail
out="${1:?usage: gpu-run.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
eb=/tmp/edgebench-gpu
if ! [ -x "$eb/edgebench" ] || ! cmp -s "$here/payload.sha256" "$eb/payload.sha256"; then
    rm -rf "$eb"
    mkdir -p "$eb"
    cat "$here"/payload.tar.xz.[0-9][0-9] >"$eb/payload.tar.xz"
    (cd "$eb" && sha256sum -c "$here/payload.sha256") || { echo "the pieces do not join: one is missing or damaged" >&2; exit 2; }
    tar -C "$eb" -xJf "$eb/payload.tar.xz"
    rm "$eb/payload.tar.xz"
    cp "$here/payload.sha256" "$eb/"
fi
model="$(ls "$eb"/*.gguf | head -1)"
if [ -z "${EDGEBENCH_GPU_LIBS:-}" ]; then
    # Each library the binary needs, from the first place that has it: CUDA's pip packages (where that machine's
    # Python keeps them), then a system toolkit. The driver (libcuda.so.1) is the system's own.
    EDGEBENCH_GPU_LIBS="$(python3 - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
dirs = []
for want in ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10", "libnvrtc.so.13"]:
    for root in roots:
        hits = glob.glob(os.path.join(root, want)) + glob.glob(os.path.join(root, "nvidia", "*", "lib", want))
        if hits:
            d = os.path.dirname(hits[0])
            dirs += [d] if d not in dirs else []
            break
print(":".join(dirs))
EOF
)"
fi
export LD_LIBRARY_PATH="$eb/lib${EDGEBENCH_GPU_LIBS:+:$EDGEBENCH_GPU_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# Container images mount the driver's libraries (libcuda.so.1, libnvidia-ml.so.1) here, not always on the loader's path.
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    if [ -d "$d" ]; then LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; fi
done
ebl="$eb/edgebench-llamacpp"
eb="$eb/edgebench"
{
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    ldd "$ebl" "$(dirname "$eb")"/lib/libggml-cuda.so* | grep -E 'cuda|cublas|llama|ggml|not found' || true
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
} >"$out/environment.txt" 2>&1
"$eb" device >"$out/device.txt" 2>&1 || true
{ "$eb" backends; "$ebl" backends; } >"$out/backends.txt" 2>&1 || true
threads="${GPU_RUN_THREADS:-$(nproc)}"
# Per backend, its CUDA cells and its CPU cells side by side, with energy (NVML for cuda:0) and the drift check;
# EDGEBENCH_LLAMACPP_LOG keeps llama.cpp's own log (its CUDA device, layers offloaded) in run-llamacpp.txt.
# The llama.cpp binary has no candle for the default drift reference: its reference is llama.cpp on the CPU running
# the model's f32 copy (every weight dequantized: the values candle's reference runs).
steps=",${GPU_RUN_STEPS:-standard,fa-control,energy},"
for b in candle llamacpp; do
    [[ "$steps" == *,standard,* ]] || break
    bin="$eb" ref=()
    [ "$b" = llamacpp ] && bin="$ebl" ref=(--reference-backend llamacpp --reference-model "$model@f32")
    EDGEBENCH_LLAMACPP_LOG=1 timeout -s INT -k 20 "${GPU_RUN_BACKEND_S:-240}" "$bin" run --suite "${GPU_RUN_SUITE:-standard}" --backend "$b" --device cuda:0,cpu \
        --threads "$threads" --model "$model" "${ref[@]}" --out "$out/results-$b.json" --force >"$out/run-$b.txt" 2>&1 ||
        echo "run exit $?" >>"$out/run-$b.txt"
    grep -v '^llama.cpp: ' "$out/run-$b.txt" | tail -n 25
done
# The control for drift on the GPU: llama.cpp's CUDA cells again with flash attention off (its default, `auto`, turns
# it on for CUDA), so a difference in drift between the GPU and the CPU can be put on that kernel or not.
if [[ "$steps" == *,fa-control,* ]]; then
    timeout -s INT -k 20 "${GPU_RUN_BACKEND_S:-240}" "$ebl" run --suite "${GPU_RUN_SUITE:-standard}" --backend llamacpp \
        --device cuda:0 --backend-opt flash_attn=off --model "$model" --reference-backend llamacpp \
        --reference-model "$model@f32" --out "$out/results-llamacpp-fa-off.json" --force >"$out/run-llamacpp-fa-off.txt" 2>&1 ||
        echo "run exit $?" >>"$out/run-llamacpp-fa-off.txt"
fi
# GPU energy per decoded token over phases long enough for NVML's counter, which steps about every 0.12 s on the H200
# (15.3 J steps at ~130 W, measured): tg128's decode lasts 0.14 s on llama.cpp there, so its J/token is one or two
# steps. 1536 decode steps take 1.7 s (llama.cpp) to 11 s (candle) per repetition.
if [[ "$steps" == *,energy,* ]]; then
    cat >"$out/gpu-energy.toml" <<'EOF'
name = "gpu-energy"
about = "tg1536 on the GPU: decode phases long enough for NVML's energy counter"
repetitions = 3
warmup = 1
load_repetitions = 1
timeout_s = 300

[[workload]]
name = "tg1536"
kind = "synthetic"
tokens = 1
gen_tokens = 1536
EOF
    for b in candle llamacpp; do
        bin="$eb"
        [ "$b" = llamacpp ] && bin="$ebl"
        timeout -s INT -k 20 "${GPU_RUN_BACKEND_S:-240}" "$bin" run --suite "$out/gpu-energy.toml" --backend "$b" \
            --device cuda:0 --drift off --model "$model" --out "$out/results-energy-$b.json" --force \
            >"$out/run-energy-$b.txt" 2>&1 || echo "run exit $?" >>"$out/run-energy-$b.txt"
        grep -v '^llama.cpp: ' "$out/run-energy-$b.txt" | tail -n 12
    done
fi
# Greedy output on the GPU against the CPU's, per backend (same prompt, greedy sampling): equal, or where it diverges.
python3 - "$out"/results-candle.json "$out"/results-llamacpp.json >"$out/greedy.txt" 2>&1 <<'EOF' || true
import json, sys
for path in sys.argv[1:]:
    cells = json.load(open(path))["cells"]
    for gpu in (c for c in cells if c["key"]["device"].startswith("cuda")):
        same = lambda c: all(c["key"][k] == gpu["key"][k] for k in ("backend", "model", "workload"))
        cpu = [c for c in cells if c["key"]["device"] == "cpu" and same(c)]
        name = f'{gpu["key"]["backend"]} {gpu["key"]["device"]} {gpu["key"]["workload"]}'
        if gpu["status"] != "ok" or not cpu or cpu[0]["status"] != "ok":
            print(f"{name}: not compared (GPU cell {gpu['status']}, CPU cell {cpu[0]['status'] if cpu else 'absent'})")
            continue
        a, b = gpu.get("sample_output", ""), cpu[0].get("sample_output", "")
        if a == b:
            print(f"{name}: greedy output equal to the CPU's ({len(a)} characters)")
        else:
            n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            print(f"{name}: diverges from the CPU's at character {n}: GPU {a[n:n + 40]!r} / CPU {b[n:n + 40]!r}")
EOF
cat "$out/greedy.txt"
# Per cell, what the issue asks to verify: status, speed, GPU memory and how it was measured, J/token, drift, and the
# kernel path and notes (llama.cpp: its device and the layers offloaded).
python3 - "$out"/results-*.json >"$out/cells.txt" 2>&1 <<'EOF' || true
import json, sys
for path in sys.argv[1:]:
    for c in json.load(open(path))["cells"]:
        k, m = c["key"], c.get("metrics", {})
        med = lambda key: (m.get(key) or {}).get("summary", {}).get("median")
        dm = c.get("device_memory") or {}
        drift = c.get("drift") or {}
        stats = drift.get("stats") or {}
        print(f'{k["backend"]} {k["device"]} {k["workload"]}: {c["status"]} {c.get("reason", "")[:200]}')
        print(f'  prefill_tps {med("prefill_tps")} decode_tps {med("decode_tps")} peak_rss_mib {med("peak_rss_mib")}')
        print(f'  peak_device_mib {med("peak_device_mib")} device_memory {json.dumps(dm)}')
        print(f'  decode_j_per_token {med("decode_j_per_token")} prefill_j_per_token {med("prefill_j_per_token")} '
              f'primary meters {(c.get("energy") or {}).get("primary")}')
        print(f'  drift {drift.get("status")} kld {(stats.get("kld") or {}).get("value")} '
              f'same_top1 {(stats.get("same_top1") or {}).get("value")}')
        b = c.get("backend") or {}
        print(f'  kernel_path {b.get("kernel_path")}')
        for n in b.get("notes", []):
            print(f'  note {n}')
EOF
"$eb" report "$out"/results-*.json --format markdown --wide >"$out/report.md" 2>&1 || true
