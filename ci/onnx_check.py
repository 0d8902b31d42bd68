"""onnx.checker (full check: types and shapes) on every ONNX file named; exits 1 on the first failure."""
import sys

import onnx

for path in sys.argv[1:]:
    onnx.checker.check_model(path, full_check=True)
    m = onnx.load(path, load_external_data=False)
    ops = sorted({(n.domain or "ai.onnx", n.op_type) for n in m.graph.node})
    print(f"onnx.checker {onnx.__version__}: {path}: ok ({len(m.graph.node)} nodes; ops: "
          + ", ".join(f"{d}:{o}" if d != "ai.onnx" else o for d, o in ops) + ")")
