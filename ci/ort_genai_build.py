"""Builds ONNX Runtime GenAI models from the GGUF file edgebench benchmarks, with onnxruntime-genai's own model
builder (`python -m onnxruntime_genai.models.builder`), for ci/ort-genai-parity.sh. Everything is cached under ROOT:

  ROOT/src/model-f32.gguf  the GGUF's tensors dequantized to f32 (the builder's GGUF loader takes only f16/f32 files:
                           it reads each tensor's raw data and reshapes it, which fails on Q4_1/Q8_0 blocks), with the
                           GGUF's architecture metadata; the builder re-quantizes the weights itself (int4, block 32)
  ROOT/src/config.json     a LlamaConfig written from the GGUF's metadata (no model hub is reachable); the builder
                           reads it through `-m ROOT/src`
  ROOT/src/tokenizer*.json the tokenizer transformers builds from the GGUF's own vocabulary (`gguf_file=`); the builder
                           refuses to run without one (it loads it and copies it next to the model). Timing feeds
                           token ids and never uses it.
  ROOT/NAME/               one builder output per configuration (rebuilt only when its build-cmd.txt, written after a
                           successful build, is missing or holds another command), with build.log and facts.json
                           (node count, op histogram, the MatMulNBits settings, genai_config.json's search and
                           session options)

Prints one JSON object per configuration (its facts).

usage: ort_genai_build.py MODEL.gguf ROOT [--only NAME ...]
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys

import numpy as np

CONFIGS = {
    # f32 activations in every MatMulNBits, last-token-only LM head, LM head kept as an f32 MatMul (the quantizer
    # skips the node; `exclude_lm_head` would drop the head from the graph altogether)
    "equal-f32": ["accuracy_level=1", "prune_lm_head=true", "nodes_to_exclude=/lm_head/MatMul"],
    # the CPU default accuracy level (4: int8 activations), last-token-only LM head quantized to int8
    "equal-int8": ["accuracy_level=4", "prune_lm_head=true", "matmul_mixed_precision=last_matmul:int8",
                   "shared_embeddings=false"],
    # the builder's plain int4 CPU output
    "default": [],
}


def read_gguf(path):
    from gguf import GGUFReader

    r = GGUFReader(path)
    kv = {}
    for k, f in r.fields.items():
        if k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"):
            continue
        kv[k] = f.contents()
    return r, kv


def llama_config(r, kv):
    """The LlamaConfig the builder needs, every figure read from the GGUF's metadata and tensors."""
    arch = kv["general.architecture"]
    if arch != "llama":
        sys.exit(f"{arch}: only llama-architecture GGUF files are handled")
    a = lambda k: kv[f"{arch}.{k}"]
    names = {t.name for t in r.tensors}
    n_head, hidden = int(a("attention.head_count")), int(a("embedding_length"))
    head_dim = int(kv.get(f"{arch}.attention.key_length", hidden // n_head))
    vocab = int(kv.get(f"{arch}.vocab_size", 0)) or len(r.fields["tokenizer.ggml.tokens"].data)
    emb = next(t for t in r.tensors if t.name == "token_embd.weight")
    if [int(x) for x in emb.shape] != [hidden, vocab]:
        sys.exit(f"token_embd.weight has shape {list(emb.shape)}, expected [{hidden}, {vocab}]")
    eps = float(f"{float(a('attention.layer_norm_rms_epsilon')):.7g}")  # stored as f32: 9.9999997e-06 -> 1e-05
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": int(a("feed_forward_length")),
        "num_hidden_layers": int(a("block_count")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(a("attention.head_count_kv")),
        "head_dim": head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": int(a("context_length")),
        "rms_norm_eps": eps,
        "rope_theta": float(a("rope.freq_base")),
        "rope_parameters": {"rope_type": "default", "rope_theta": float(a("rope.freq_base"))},
        "vocab_size": vocab,
        "tie_word_embeddings": "output.weight" not in names,
        "attention_bias": "blk.0.attn_q.bias" in names,
        "mlp_bias": "blk.0.ffn_up.bias" in names,
        "bos_token_id": int(kv["tokenizer.ggml.bos_token_id"]),
        "eos_token_id": int(kv["tokenizer.ggml.eos_token_id"]),
        "pad_token_id": int(kv.get("tokenizer.ggml.padding_token_id", kv["tokenizer.ggml.eos_token_id"])),
        "torch_dtype": "float32",
    }


def write_f32_gguf(r, kv, out):
    """The same tensors, dequantized to f32, and the architecture metadata (the builder reads tensors only)."""
    from gguf import GGUFWriter, GGMLQuantizationType
    from gguf.quants import dequantize

    arch = kv["general.architecture"]
    w = GGUFWriter(out + ".tmp", arch)
    w.add_name(str(kv.get("general.name", "model")))
    w.add_file_type(0)  # ALL_F32
    for k, v in kv.items():
        if k.startswith(f"{arch}.") and isinstance(v, (int, float)) and not isinstance(v, bool):
            (w.add_float32 if isinstance(v, float) else w.add_uint32)(k, v)
    types = collections.Counter()
    for t in r.tensors:
        types[t.tensor_type.name] += 1
        shape = [int(x) for x in reversed(t.shape)]  # numpy order: rows first
        if t.tensor_type == GGMLQuantizationType.F32:
            data = np.asarray(t.data, dtype=np.float32).reshape(shape)
        else:
            data = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        w.add_tensor(t.name, np.ascontiguousarray(data))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(out + ".tmp", out)
    return dict(types)


def prepare(gguf_path, src):
    """ROOT/src: the f32 GGUF, config.json and tokenizer files; remade only when src/prepare.json is missing."""
    done = os.path.join(src, "prepare.json")
    if os.path.exists(done):
        return json.load(open(done))
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    r, kv = read_gguf(gguf_path)
    cfg = llama_config(r, kv)
    with open(os.path.join(src, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf_path)),
                                        gguf_file=os.path.basename(gguf_path))
    tok.save_pretrained(src)
    types = write_f32_gguf(r, kv, os.path.join(src, "model-f32.gguf"))
    info = {"gguf": os.path.abspath(gguf_path), "source_tensor_types": types, "config": cfg,
            "tokenizer_vocab": len(tok)}
    with open(done, "w") as f:
        json.dump(info, f, indent=2)
    return info


def facts(out, name, cmd):
    import onnx

    m = onnx.load(os.path.join(out, "model.onnx"), load_external_data=False)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    nbits = collections.Counter()
    for n in m.graph.node:
        if n.op_type == "MatMulNBits":
            at = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            nbits[f"bits={at.get('bits')} block={at.get('block_size')} acc={at.get('accuracy_level', 0)} "
                  f"zp={len(n.input) > 3 and bool(n.input[3])}"] += 1
    head = [n for n in m.graph.node if n.name.startswith("/lm_head/")]
    known = {i.name for i in m.graph.input} | {i.name for i in m.graph.initializer} | {""}
    dangling = []
    for n in m.graph.node:
        dangling += [f"{n.name} <- {i}" for i in n.input if i not in known]
        known.update(n.output)
    if dangling:
        sys.exit(f"{name}: the builder's graph reads tensors nothing produces: {dangling}")
    g = json.load(open(os.path.join(out, "genai_config.json")))
    dec = g["model"]["decoder"]
    return {
        "config": name,
        "builder_cmd": cmd,
        "nodes": len(m.graph.node),
        "ops_top10": dict(ops.most_common(10)),
        "matmulnbits": dict(nbits),
        "lm_head_nodes": [f"{n.name}:{n.op_type}" for n in head],
        "embed_nodes": [f"{n.name}:{n.op_type}" for n in m.graph.node if n.name.startswith("/model/embed_tokens/")],
        "weights_bytes": os.path.getsize(os.path.join(out, "model.onnx.data")),
        "inputs": [i.name for i in m.graph.input if not i.name.startswith("past_key_values")],
        "outputs": [o.name for o in m.graph.output if not o.name.startswith("present")],
        "session_options": dec.get("session_options"),
        "search": g.get("search"),
        "past_present_share_buffer": g.get("search", {}).get("past_present_share_buffer"),
        "context_length": g["model"].get("context_length"),
    }


def build(python, src, out, name, opts):
    cmd = [python, "-m", "onnxruntime_genai.models.builder", "-i", os.path.join(src, "model-f32.gguf"),
           "-m", src, "-o", out, "-p", "int4", "-e", "cpu", "-c", os.path.join(src, "cache")]
    if opts:
        cmd += ["--extra_options", *opts]
    text = " ".join(cmd)
    done = os.path.join(out, "build-cmd.txt")
    if not (os.path.exists(done) and open(done).read().strip() == text):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        with open(os.path.join(out, "build.log"), "w") as log:
            rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=out,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
        if rc != 0:
            sys.exit(f"builder failed for {name} (exit {rc}); see {out}/build.log")
        with open(done, "w") as f:
            f.write(text + "\n")
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("root")
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    src = os.path.join(a.root, "src")
    info = prepare(a.gguf, src)
    print(json.dumps({"prepared": src, **{k: info[k] for k in ("source_tensor_types", "config")}}), flush=True)
    for name, opts in CONFIGS.items():
        if a.only and name not in a.only:
            continue
        out = os.path.join(a.root, name)
        cmd = build(sys.executable, src, out, name, opts)
        f = facts(out, name, cmd)
        with open(os.path.join(out, "facts.json"), "w") as fh:
            json.dump(f, fh, indent=2)
        print(json.dumps(f), flush=True)


if __name__ == "__main__":
    main()
