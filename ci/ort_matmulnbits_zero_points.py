"""What a 4-bit `MatMulNBits` costs in ONNX Runtime with each form of zero points: none (the default 8), explicit
packed uint8 zero points, and float zero points (the only form that could hold a Q4_1 block's `−m/d`). One-token
products (decode's shape) at accuracy level 4, 30 nodes of random weights per graph, the three graphs alternated
per round; prints the median microseconds per node.

usage: ort_matmulnbits_zero_points.py [THREADS...]   (default: 1 2)

Needs the `onnx` and `onnxruntime` packages (the virtual environment `.ci/run` builds for the ONNX checks).
"""
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

NODES = 30
SHAPES = [(960, 576), (576, 1536)]  # (N, K): SmolLM2-135M's fused Q/K/V and its down projection
KINDS = ["none", "uint8", "float"]


def graph(n, k, kind, rng):
    nb = k // 32
    nodes, inits = [], []
    for i in range(NODES):
        inputs = ["x", f"codes{i}", f"scales{i}"]
        inits.append(numpy_helper.from_array(rng.integers(0, 256, (n, nb, 16), dtype=np.uint8), f"codes{i}"))
        inits.append(numpy_helper.from_array((rng.random(n * nb) * 0.01).astype(np.float32), f"scales{i}"))
        if kind == "uint8":
            inits.append(numpy_helper.from_array(np.zeros(n * ((nb + 1) // 2), np.uint8), f"zero{i}"))
            inputs.append(f"zero{i}")
        elif kind == "float":
            inits.append(numpy_helper.from_array((rng.random(n * nb) * 8).astype(np.float32), f"zero{i}"))
            inputs.append(f"zero{i}")
        nodes.append(helper.make_node("MatMulNBits", inputs, [f"y{i}"], domain="com.microsoft", K=k, N=n, bits=4,
                                      block_size=32, accuracy_level=4))
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [1, n]) for i in range(NODES)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])], outputs, inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(g, ir_version=10, opset_imports=opsets).SerializeToString()


def main():
    threads = [int(t) for t in sys.argv[1:]] or [1, 2]
    rng = np.random.default_rng(0)
    print(f"onnxruntime {ort.__version__}; microseconds per MatMulNBits node, median of 6 alternated rounds")
    for n, k in SHAPES:
        for t in threads:
            sessions = {}
            for kind in KINDS:
                o = ort.SessionOptions()
                o.intra_op_num_threads = t
                o.inter_op_num_threads = 1
                o.log_severity_level = 3
                sessions[kind] = ort.InferenceSession(graph(n, k, kind, rng), o, providers=["CPUExecutionProvider"])
            feed = {"x": rng.standard_normal((1, k), dtype=np.float32)}
            times = {kind: [] for kind in KINDS}
            for r in range(6):
                for kind in KINDS if r % 2 == 0 else KINDS[::-1]:
                    s = sessions[kind]
                    s.run(None, feed)
                    start = time.perf_counter()
                    for _ in range(30):
                        s.run(None, feed)
                    times[kind].append((time.perf_counter() - start) / 30 / NODES * 1e6)
            cells = ", ".join(f"{kind} {statistics.median(v):.1f}" for kind, v in times.items())
            print(f"N={n} K={k} threads {t}: {cells}")


if __name__ == "__main__":
    main()
