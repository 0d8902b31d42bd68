"""Times a model built by onnxruntime-genai's model builder through onnxruntime-genai's own generator API
(og.Model / og.Generator), the way edgebench's `standard` suite times a backend:

  pp512  a fresh generator, then one append_tokens() of 512 random token ids (seeded, in the vocab range): the
         prompt's forward pass; prefill t/s = 512 / its time
  tg128  a fresh generator, append_tokens() of 1 random token id (its forward pass, untimed) and one
         generate_next_token() that only picks the first token from those logits (untimed); then 128
         generate_next_token() calls, each one forward pass on the last token plus the greedy pick (search options:
         do_sample false, min_length = max_length so it never stops at an end token); decode t/s = 128 / their time

The decoder's intra-op thread count is set through genai's own config, an og.Config overlay of
model.decoder.session_options.intra_op_num_threads; every other session option is the built genai_config.json's.
1 warm-up + N timed repetitions per thread count; prints one JSON object per thread count (medians, raw samples).

usage: ort_genai_timing.py MODEL_DIR THREADS [THREADS ...] [--reps 5] [--warmup 1] [--max-length 1024] [--seed 7]
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import onnxruntime
import onnxruntime_genai as og


def model(path, threads):
    c = og.Config(path)
    c.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
    return og.Model(c)


def generator(m, max_length):
    p = og.GeneratorParams(m)
    p.set_search_options(do_sample=False, max_length=max_length, min_length=max_length, num_beams=1)
    return og.Generator(m, p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("threads", type=int, nargs="+")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    if a.max_length < 512 + 1 or a.max_length < 1 + 129:
        ap.error("--max-length must hold the 512-token prompt")
    cfg = json.load(open(os.path.join(a.model_dir, "genai_config.json")))
    vocab = cfg["model"]["vocab_size"]
    rng = np.random.default_rng(a.seed)
    for threads in a.threads:
        m = model(a.model_dir, threads)
        tasks = len(os.listdir("/proc/self/task"))
        pp, tg = [], []
        for r in range(a.warmup + a.reps):
            g = generator(m, a.max_length)
            ids = rng.integers(0, vocab, 512, dtype=np.int32)
            t = time.perf_counter()
            g.append_tokens(ids)
            pp_s = time.perf_counter() - t
            del g
            g = generator(m, a.max_length)
            g.append_tokens(rng.integers(0, vocab, 1, dtype=np.int32))
            g.generate_next_token()
            t = time.perf_counter()
            for _ in range(128):
                g.generate_next_token()
            tg_s = time.perf_counter() - t
            if g.token_count() != 1 + 1 + 128:
                raise SystemExit(f"expected 130 tokens in the sequence, got {g.token_count()}")
            del g
            if r >= a.warmup:
                pp.append(512 / pp_s)
                tg.append(128 / tg_s)
        print(json.dumps({"model_dir": a.model_dir, "threads": threads, "onnxruntime": onnxruntime.__version__,
                          "onnxruntime_genai": og.__version__, "max_length": a.max_length,
                          "process_threads": tasks, "pp512_tps": statistics.median(pp),
                          "tg128_tps": statistics.median(tg), "pp512_all": pp, "tg128_all": tg}), flush=True)
        del m


if __name__ == "__main__":
    main()
