#!/usr/bin/env python3
"""PyTorch reference benchmark for `jielong bench train --family lstm|gru|rnn`: the same
recurrent language model trained on random tokens, tokens/s side by side.

    pip install torch==2.15.0        # (the bench venv: scripts/install-bench-deps)
    .venv-bench/bin/python bench/pytorch_lstm.py --family lstm --preset small [--json]

Model (jielong's `small` recurrent preset, dropout 0): embedding (4096, 256) -> nn.LSTM /
nn.GRU / nn.RNN(256, 256, 2 layers, batch_first) -> output tied to the embedding. Batch 32
sequences of 64 tokens (`medium`: hidden 512, seq 128, vocab 8192, batch 8), mean
cross-entropy over every position, AdamW (lr 1e-3, betas 0.9/0.95, weight decay 0.1 on
matrices), global gradient-norm clipping at 1.0: one training step as jielong's StepRunner
takes it. PyTorch runs its oneDNN/MKL kernels on all the machine's threads (the default),
as jielong runs on all of them. tokens/s = steps x batch x seq / wall time of those steps,
after --warmup steps.
"""

import argparse
import json
import sys
import time

import torch

PRESETS = {"small": (2, 256, 64, 4096, 32), "medium": (2, 512, 128, 8192, 8)}
KINDS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


class LM(torch.nn.Module):
    def __init__(self, family, n_layer, hidden, vocab):
        super().__init__()
        self.encoder = torch.nn.Embedding(vocab, hidden)
        self.rnn = KINDS[family](hidden, hidden, n_layer, batch_first=True)

    def forward(self, ids):
        out, _ = self.rnn(self.encoder(ids))
        return out @ self.encoder.weight.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="lstm", choices=sorted(KINDS))
    ap.add_argument("--preset", default="small", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n_layer, hidden, seq, vocab, batch = PRESETS[a.preset]
    torch.manual_seed(0)
    m = LM(a.family, n_layer, hidden, vocab)
    decay = [p for p in m.parameters() if p.dim() >= 2]
    rest = [p for p in m.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randint(0, vocab, (batch, seq), generator=g), torch.randint(0, vocab, (batch, seq), generator=g)) for _ in range(a.warmup + a.steps)]

    def step(ids, tgt):
        logits = m(ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return loss

    for ids, tgt in batches[: a.warmup]:
        step(ids, tgt)
    t0 = time.perf_counter()
    for ids, tgt in batches[a.warmup:]:
        step(ids, tgt)
    el = time.perf_counter() - t0
    tps = a.steps * batch * seq / el
    n_params = sum(p.numel() for p in m.parameters())
    log = sys.stderr if a.json else sys.stdout
    print(f"pytorch {torch.__version__} {a.family} preset {a.preset} · {n_params / 1e6:.2f} M parameters · batch {batch} x seq {seq} · {torch.get_num_threads()} threads", file=log)
    print(f"  {tps:.0f} tokens/s ({el * 1000 / a.steps:.1f} ms/step over {a.steps} steps)", file=log)
    if a.json:
        print(json.dumps({"impl": "pytorch", "family": a.family, "preset": a.preset, "n_params": n_params, "tokens_per_s": tps,
                          "step_ms": el * 1000 / a.steps, "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
