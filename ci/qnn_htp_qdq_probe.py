"""Which forms of a 4-bit weight product QNN's HTP (ONNX Runtime's QNN plugin, emulated on x86-64) takes, with the
CPU fallback disabled: the export's `MatMulNBits`, and `DequantizeLinear` of int4 weights in 32-element blocks along
K (the layout of a Q4_0 block: signed codes `q - 8` times the block's scale, so the file's values carried exactly)
feeding a `MatMul`, with the activations float or quantized (QDQ) at 8 or 16 bits, with and without a quantized
output, alone or between float operators. One 576x960 product (SmolLM2-135M's Q/K/V width). For each form it
prints whether the whole graph went to the HTP and, where it did, the largest error of its output relative to the
product of the exact weights with f32 activations (activation scales set from the very input fed, so the error is
the arithmetic's, not a calibration's).

usage: qnn_htp_qdq_probe.py QNN_PLUGIN_LIBRARY   (libonnxruntime_providers_qnn.so from the onnxruntime-qnn wheel)

Needs the `onnx` and `onnxruntime` packages (the virtual environment `.ci/run` builds for the ONNX checks).
"""
import sys

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

K, N, BLOCK = 576, 960, 32
FORMS = [
    # (name, activation bits (0: float), weights, output quantized, between float operators)
    ("MatMulNBits, float activations (the export's)", 0, "nbits", False, False),
    ("DQ int4 blocks -> MatMul, float activations", 0, "int4", False, False),
    ("QDQ u16 in, DQ int4 blocks -> MatMul, float out", 16, "int4", False, False),
    ("QDQ u16 in, DQ int4 blocks -> MatMul, QDQ u16 out", 16, "int4", True, False),
    ("the same between float Mul and Add", 16, "int4", True, True),
    ("QDQ u8 in, DQ int4 blocks -> MatMul, QDQ u8 out", 8, "int4", True, False),
]


def qdq(nodes, inits, src, name, bits, absmax):
    """Quantizes and dequantizes `src` symmetrically about the zero point, scale from `absmax`."""
    zp = 1 << (bits - 1)
    dtype = np.uint16 if bits == 16 else np.uint8
    inits += [
        numpy_helper.from_array(np.array(absmax / (zp - 1), np.float32), f"{name}_s"),
        numpy_helper.from_array(np.array(zp, dtype), f"{name}_z"),
    ]
    nodes.append(helper.make_node("QuantizeLinear", [src, f"{name}_s", f"{name}_z"], [f"{name}_q"]))
    nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"], [f"{name}_d"]))
    return f"{name}_d"


def graph(form, codes, scales, x_absmax, y_absmax):
    _, bits, weights, out_q, mixed = form
    nodes, inits = [], []
    src = "x"
    if mixed:
        inits.append(numpy_helper.from_array(np.full((1, K), 0.5, np.float32), "gain"))
        nodes.append(helper.make_node("Mul", ["x", "gain"], ["x_scaled"]))
        src = "x_scaled"
    if weights == "nbits":
        packed = ((codes + 8).T.reshape(N, K // BLOCK, BLOCK // 2, 2).astype(np.uint8))
        packed = packed[..., 0] | (packed[..., 1] << 4)
        inits += [
            numpy_helper.from_array(packed, "w_packed"),
            numpy_helper.from_array(np.ascontiguousarray(scales.T).reshape(-1), "w_scales"),
        ]
        node = helper.make_node(
            "MatMulNBits", [src, "w_packed", "w_scales"], ["y"], domain="com.microsoft", K=K, N=N, bits=4,
            block_size=BLOCK,
        )
        nodes.append(node)
    else:
        if bits:
            src = qdq(nodes, inits, src, "x", bits, x_absmax)
        inits += [
            helper.make_tensor("w_codes", TensorProto.INT4, [K, N], codes.flatten().tolist()),
            numpy_helper.from_array(scales, "w_scales"),
        ]
        nodes.append(helper.make_node("DequantizeLinear", ["w_codes", "w_scales"], ["w"], axis=0, block_size=BLOCK))
        nodes.append(helper.make_node("MatMul", [src, "w"], ["y"]))
    last = "y"
    if out_q:
        last = qdq(nodes, inits, "y", "y", bits, y_absmax)
    if mixed:
        inits.append(numpy_helper.from_array(np.full((1, N), 0.25, np.float32), "bias"))
        nodes.append(helper.make_node("Add", [last, "bias"], ["out"]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["out"]))
    g = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, N])], inits,
    )
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    )
    m.ir_version = 10
    return m.SerializeToString()


def main():
    ort.register_execution_provider_library("QNN", sys.argv[1])
    devices = [d for d in ort.get_ep_devices() if d.ep_name == "QNN"]
    rng = np.random.default_rng(7)
    codes = rng.integers(-8, 8, (K, N)).astype(np.int8)
    scales = (rng.random((K // BLOCK, N)) * 0.01 + 0.001).astype(np.float32)
    weights = (codes.reshape(K // BLOCK, BLOCK, N) * scales[:, None, :]).reshape(K, N)
    x = (rng.standard_normal((1, K)) * 2).astype(np.float32)
    for form in FORMS:
        gain = 0.5 if form[4] else 1.0
        exact = (x * gain) @ weights
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        so.add_provider_for_devices(
            devices, {"backend_type": "htp", "soc_model": "60", "htp_arch": "75", "enable_htp_fp16_precision": "1"}
        )
        model = graph(form, codes, scales, float(np.abs(x * gain).max()), float(np.abs(exact).max()))
        try:
            s = ort.InferenceSession(model, sess_options=so)
        except Exception as e:  # noqa: BLE001 - the refusal is the answer
            why = "nodes left to the CPU provider; QNN logs which" if "fallback to CPU" in str(e) else str(e)[:200]
            print(f"{form[0]}: refused ({why})")
            continue
        out = s.run(None, {"x": x})[0] - (0.25 if form[4] else 0.0)
        err = float(np.abs(out - exact).max() / np.abs(exact).max())
        print(f"{form[0]}: taken whole; largest error {err:.2e} of the exact product's largest value")


if __name__ == "__main__":
    main()
