#!/usr/bin/env python3
"""Does jielong's BERT learn masked LM as fast as transformers' does? Train HF `BertForMaskedLM`
on the same token shards, with the same model shape, optimiser, schedule and masking as a
jielong BERT run, and print its validation loss at the same steps as jielong's metrics.jsonl.

    .venv-bench/bin/python bench/hf_mlm_curve.py --run RUN_DIR [--eval-windows 128]

RUN_DIR is a finished `jielong train` run of family bert with objective = "mlm"; its
config.toml gives the shards (data.dir, relative to the current folder), n_layer, n_head, n_embd,
n_inner (0 = 4 × n_embd), max_seq_len, batch_size, max_steps, learning_rate, min_lr,
warmup_steps, weight_decay, beta1, beta2, grad_clip and eval_interval. The same recipe on the
PyTorch side: AdamW, linear warm-up then cosine decay to min_lr, gradient clipping, windows
drawn at random places, 15% of the non-special tokens chosen, 80/10/10 mask/random/keep.
Random draws differ between the two (different generators), so the curves agree in shape and
level, not bit for bit; the printout puts jielong's val_loss beside transformers'.

Versions used: torch 2.15.0, transformers 5.23.0 (bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import math
import tomllib
from pathlib import Path

HEADER_TOKENS = 32  # a jielong shard starts with a 64-byte header; tokens are little-endian u16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", required=True)
    ap.add_argument("--eval-windows", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    import numpy as np
    import torch
    from transformers import BertConfig, BertForMaskedLM

    run = Path(a.run)
    cfg = tomllib.loads((run / "config.toml").read_text())
    m, t = cfg["model"], cfg["train"]
    shards = Path(cfg["data"]["dir"])
    meta = json.loads((shards / "meta.json").read_text())
    if meta["vocab_size"] >= 65536:
        raise SystemExit("this script reads u16 shards only")

    def load(split: str) -> np.ndarray:
        return np.concatenate([np.fromfile(shards / f, dtype="<u2")[HEADER_TOKENS:] for f in meta[split]["shards"]]).astype(np.int64)

    train, val = load("train"), load("val")
    vocab = m["vocab_size"]
    special = {0, 1, 2, 3, 4, meta["eot_id"]}  # [PAD] [UNK] [CLS] [SEP] [MASK] and end-of-text
    mask_id = 4
    seq, batch, steps = m["max_seq_len"], t["batch_size"], t["max_steps"]
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = BertForMaskedLM(BertConfig(
        vocab_size=vocab, hidden_size=m["n_embd"], num_hidden_layers=m["n_layer"],
        num_attention_heads=m["n_head"], intermediate_size=m["n_inner"] or 4 * m["n_embd"],
        max_position_embeddings=seq, type_vocab_size=m.get("type_vocab_size", 2),
        hidden_dropout_prob=m["dropout"], attention_probs_dropout_prob=m["dropout"],
        layer_norm_eps=m["layer_norm_eps"]))
    opt = torch.optim.AdamW(model.parameters(), lr=t["learning_rate"], betas=(t["beta1"], t["beta2"]),
                            eps=t["eps"], weight_decay=t["weight_decay"])
    lr, min_lr, warm = t["learning_rate"], t["min_lr"], t["warmup_steps"]

    def lr_at(s: int) -> float:
        if s < warm:
            return lr * (s + 1) / warm
        p = (s - warm) / max(1, steps - warm)
        return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * p))

    def draw(data: np.ndarray, b: int):
        starts = rng.integers(0, len(data) - seq, b)
        x = np.stack([data[s:s + seq] for s in starts])
        labels = np.full_like(x, -100)
        chosen = (rng.random(x.shape) < 0.15) & ~np.isin(x, list(special))
        labels[chosen] = x[chosen]
        r = rng.random(x.shape)
        x = x.copy()
        x[chosen & (r < 0.8)] = mask_id
        rnd = chosen & (r >= 0.8) & (r < 0.9)
        x[rnd] = rng.integers(0, vocab, int(rnd.sum()))
        return torch.tensor(x), torch.tensor(labels)

    ours = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "val_loss" in r:
            ours[r["step"]] = r["val_loss"]
    print(f"{'step':>6} {'jielong val':>12} {'transformers val':>17}")
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(s)
        x, y = draw(train, batch)
        loss = model(input_ids=x, labels=y).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        opt.step()
        if (s + 1) % t["eval_interval"] == 0 or s + 1 == steps:
            with torch.no_grad():
                x, y = draw(val, a.eval_windows)
                v = model(input_ids=x, labels=y).loss.item()
            j = ours.get(s + 1)
            print(f"{s + 1:>6} {j if j is None else round(j, 3)!s:>12} {v:>17.3f}", flush=True)


if __name__ == "__main__":
    main()
