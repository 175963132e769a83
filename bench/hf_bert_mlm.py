#!/usr/bin/env python3
# Masked-LM training throughput of Hugging Face `BertForMaskedLM` (eager attention) at the
# shapes of jielong's BERT presets, with jielong's trainer defaults, for bench/mlm_train.sh.
#
#   pip install torch==2.15.0 transformers==5.23.0   (CPU wheels; measured with these versions)
#
# Model: BertConfig(vocab, hidden, layers, heads, intermediate = 4·hidden, max positions,
# type_vocab_size 2, hidden_act "gelu" (exact erf GELU), every dropout 0, layer_norm_eps 1e-12),
# the MLM decoder tied to the word embeddings, no pooler (BertForMaskedLM has none; jielong's
# pooler is not on the MLM loss path, so it costs nothing in a step).
# Optimizer: AdamW lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices and
# embeddings only (not biases or norms), global gradient-norm clip 1.0, 50 warm-up steps then a
# cosine down to 1e-4: crates/jielong-train/src/config.rs `TrainConfig::default()`.
# Data: random token ids (the special ids 0..5 never drawn), masked on the fly each step as
# jielong's collator does: 15% of positions chosen, 80% → [MASK], 10% → a random id, 10% kept;
# the loss is the cross-entropy over the chosen positions only (labels -100 elsewhere).
#
# Tokens counted: batch × seq_len per step (every position of every window, masked or not),
# which is what `jielong train` counts (`tokens_per_step = batch_size × grad_accum × max_seq_len`
# in crates/jielong-train/src/trainer.rs). A step is timed from the sampling of its batch to the
# end of optimizer.step(), like jielong's per-step `tokens_per_s`; tokens/s = tokens of the
# timed steps / their summed time, after `--warmup` untimed steps.
#
# Two settings: the default (what `torch.optim.AdamW` and PyTorch do out of the box on CPU: the
# per-parameter for-loop AdamW, denormal floats computed as such) and a tuned one
# (`--adamw fused --flush-denormal`): 2.6x faster steps for small at load 3.4 on the 2-core
# host, only about 10% faster under load 6 (BENCHMARKS.md, BERT masked-LM section).
#
# Usage: hf_bert_mlm.py --preset small|medium [--batch N] [--steps N] [--warmup N] [--threads N]
#                       [--adamw for-loop|fused] [--flush-denormal]
# Prints one JSON line.
import argparse
import json
import math
import time

import torch
import transformers
from transformers import BertConfig, BertForMaskedLM

# name: (layers, heads, hidden, max positions = seq len, vocab, batch of `jielong bench train`)
PRESETS = {
    "small": (4, 4, 256, 128, 4096, 32),
    "medium": (6, 6, 384, 256, 8192, 8),
}
N_SPECIAL = 6  # [PAD] [UNK] [CLS] [SEP] [MASK] <|endoftext|>: ids 0..5 of a jielong wordpiece vocabulary
MASK_ID = 4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=0, help="0 = the preset's batch")
    ap.add_argument("--seq", type=int, default=0, help="0 = the preset's max positions")
    ap.add_argument("--vocab", type=int, default=0, help="0 = the preset's vocabulary")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--adamw", default="for-loop", choices=["for-loop", "fused"],
                    help="for-loop: what torch.optim.AdamW runs on CPU by default; fused: fused=True")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): denormal floats read as 0 (not the default)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    torch.manual_seed(a.seed)
    n_layer, n_head, n_embd, max_pos, vocab, batch = PRESETS[a.preset]
    batch = a.batch or batch
    seq = a.seq or max_pos
    vocab = a.vocab or vocab
    cfg = BertConfig(
        vocab_size=vocab, hidden_size=n_embd, num_hidden_layers=n_layer, num_attention_heads=n_head,
        intermediate_size=4 * n_embd, max_position_embeddings=max_pos, type_vocab_size=2,
        hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        layer_norm_eps=1e-12, tie_word_embeddings=True, attn_implementation="eager",
    )
    model = BertForMaskedLM(cfg)
    model.train()
    lr, min_lr, warm, total = 1e-3, 1e-4, 50, 1000
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), eps=1e-8,
                            **({"fused": True} if a.adamw == "fused" else {"foreach": False}))

    def lr_at(step):
        if step < warm:
            return lr * (step + 1) / warm
        p = min(1.0, (step - warm) / max(1, total - warm))
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * p))

    def batch_at():
        ids = torch.randint(N_SPECIAL, vocab, (batch, seq))
        labels = ids.clone()
        chosen = torch.rand(batch, seq) < 0.15
        labels[~chosen] = -100
        r = torch.rand(batch, seq)
        inp = ids.clone()
        inp[chosen & (r < 0.8)] = MASK_ID
        rnd = chosen & (r >= 0.8) & (r < 0.9)
        inp[rnd] = torch.randint(0, vocab, (int(rnd.sum()),))
        return inp, labels

    times, losses = [], []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        inp, labels = batch_at()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=inp, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if step >= a.warmup:
            times.append(dt)
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "impl": "hf-BertForMaskedLM-eager", "preset": a.preset, "batch": batch, "seq_len": seq,
        "vocab": vocab, "n_layer": n_layer, "n_head": n_head, "n_embd": n_embd, "n_inner": 4 * n_embd,
        "n_params": n_params, "threads": a.threads, "adamw": a.adamw, "flush_denormal": a.flush_denormal, "timed_steps": a.steps, "warmup_steps": a.warmup,
        "tokens_per_step": batch * seq, "tokens_counted": "batch*seq_len, every position",
        "tokens_per_s": round(batch * seq * len(times) / sum(times), 1),
        "median_step_s": round(sorted(times)[len(times) // 2], 4),
        "first_loss": round(losses[0], 3), "last_loss": round(losses[-1], 3),
        "torch": torch.__version__, "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
