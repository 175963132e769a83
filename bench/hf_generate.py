#!/usr/bin/env python3
"""Reference for `jielong bench generate`: the identical GPT-2-layout model as Hugging Face
`GPT2LMHeadModel` (transformers, PyTorch eager), decoded greedily with and without its KV
cache, at the batch sizes of `--batches` (1 and 8 unless told), with the same protocol as the Rust side:

  prompt = context - new_tokens random ids per sequence;
  prefill = one forward over the prompt (+ the first new token), median of three fresh runs;
  decode  = new_tokens - 1 further steps, one token per sequence per step;
  with the cache: past_key_values carried between steps;
  without: the whole sequence recomputed every step.

Run (after scripts/install-bench-deps):

    .venv-bench/bin/python bench/hf_generate.py --preset medium [--json]

Versions used for BENCHMARKS.md: torch 2.15.0, transformers 5.23.0 (bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel

PRESETS = {
    "small": dict(n_layer=4, n_head=4, n_embd=256, seq=128, vocab=4096),
    "medium": dict(n_layer=6, n_head=6, n_embd=384, seq=256, vocab=8192),
}


def build(p: dict) -> GPT2LMHeadModel:
    cfg = GPT2Config(
        vocab_size=p["vocab"], n_positions=p["seq"], n_embd=p["n_embd"], n_layer=p["n_layer"],
        n_head=p["n_head"], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
    )
    torch.manual_seed(1337)
    model = GPT2LMHeadModel(cfg)
    model.eval()
    return model


@torch.inference_mode()
def measure(model, p, batch: int, cache: bool, new_tokens: int):
    ctx = p["seq"]
    prompt_len = ctx - new_tokens
    g = torch.Generator().manual_seed(7)

    def fresh():
        return torch.randint(0, p["vocab"], (batch, prompt_len), generator=g)

    def prefill(ids):
        out = model(input_ids=ids, use_cache=cache)
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
        return torch.cat([ids, nxt], 1), (out.past_key_values if cache else None), nxt

    times = []
    for _ in range(3):
        ids = fresh()
        t0 = time.perf_counter()
        ids, past, nxt = prefill(ids)
        times.append(time.perf_counter() - t0)
    times.sort()
    prefill_s = times[1]
    t1 = time.perf_counter()
    for _ in range(new_tokens - 1):
        if cache:
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
        else:
            out = model(input_ids=ids, use_cache=False)
        nxt = out.logits[:, -1, :].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
    decode_s = time.perf_counter() - t1
    steps = new_tokens - 1
    return {
        "impl": "transformers", "preset": None, "batch": batch, "kv_cache": cache, "context": ctx,
        "prompt_tokens": prompt_len, "new_tokens": new_tokens,
        "prefill_tokens_per_s": batch * prompt_len / prefill_s,
        "decode_tokens_per_s": batch * steps / decode_s,
        "decode_ms_per_step": decode_s * 1000 / steps,
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="medium", choices=sorted(PRESETS))
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--batches", default="1,8", help="batch sizes, comma-separated (as jielong's --batches)")
    ap.add_argument("--recompute", default="true", choices=["true", "false"],
                    help="also measure decoding without the KV cache (as jielong's --recompute)")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count() or 1)))
    p = PRESETS[args.preset]
    model = build(p)
    # warm-up
    with torch.inference_mode():
        model(input_ids=torch.zeros((1, 16), dtype=torch.long))
    rates = {}
    batches = [int(b) for b in args.batches.split(",")]
    caches = (True, False) if args.recompute == "true" else (True,)
    for batch in batches:
        for cache in caches:
            r = measure(model, p, batch, cache, args.new_tokens)
            r["preset"] = args.preset
            rates[(batch, cache)] = r["decode_tokens_per_s"]
            if args.json:
                print(json.dumps(r))
            else:
                print(f"  {batch:>5}  {'on' if cache else 'off':<8} {r['prefill_tokens_per_s']:>14.0f} "
                      f"{r['decode_tokens_per_s']:>14.1f} {r['decode_ms_per_step']:>12.2f}")
    if not args.json and args.recompute == "true":
        for batch in batches:
            print(f"  batch {batch}: the KV cache decodes {rates[(batch, True)] / rates[(batch, False)]:.1f}x faster than recomputing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
