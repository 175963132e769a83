"""The PyTorch side of bench/lora_vs_full.sh: full fine-tuning or LoRA (PEFT) of a sequence
classifier (a BERT-style encoder pooled at [CLS], or a GPT-2 pooled at its last real token), the
run `jielong finetune --task classify --regime full|lora` makes, on the same model, data, batch
size, sequence cap and threads. Prints one JSON line: trainable parameters,
total parameters, real tokens/s over the training loop (padding not counted, [CLS]/[SEP]
counted, as jielong counts), seconds. Peak RSS is measured from outside (/usr/bin/time).

    .venv-bench/bin/python bench/peft_finetune.py --model data/minilm --data train.jsonl \
        --regime full|lora [--epochs 1 --batch-size 16 --max-len 128 --lora-rank 8 --lora-alpha 16]

Measured with torch 2.15.0, transformers 5.23.0, peft 0.21.2 (scripts/install-bench-deps, then
pip install peft==0.21.2).
"""

import argparse
import json
import random
import time

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--regime", choices=["full", "lora"], required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16.0)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    rows = [json.loads(l) for l in open(a.data, encoding="utf-8") if l.strip()]
    labels = sorted({str(r["label"]) for r in rows})
    y = [labels.index(str(r["label"])) for r in rows]
    tok = AutoTokenizer.from_pretrained(a.model)
    gpt = AutoConfig.from_pretrained(a.model).model_type == "gpt2"
    if gpt and tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    enc = tok([r["text"] for r in rows], truncation=True, max_length=a.max_len, padding=False)
    # Attention: transformers' default (sdpa), what a user gets.
    model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=len(labels))
    if gpt:
        model.config.pad_token_id = tok.pad_token_id
    if a.regime == "lora":
        from peft import LoraConfig, get_peft_model

        # GPT-2's fused c_attn is a Conv1D ((in, out) weights): PEFT's fan_in_fan_out.
        targets = dict(target_modules=["c_attn"], fan_in_fan_out=True) if gpt else dict(target_modules=["query", "value"])
        model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=a.lora_rank, lora_alpha=a.lora_alpha, lora_dropout=0.0, **targets))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    lr = a.lr if a.lr is not None else (2e-5 if a.regime == "full" else 5e-4)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    model.train()
    rng = random.Random(1337)
    tokens, t0 = 0, time.perf_counter()
    for _ in range(a.epochs):
        order = list(range(len(rows)))
        rng.shuffle(order)
        for s in range(0, len(order), a.batch_size):
            idx = order[s : s + a.batch_size]
            batch = tok.pad({"input_ids": [enc["input_ids"][i] for i in idx], "attention_mask": [enc["attention_mask"][i] for i in idx]}, return_tensors="pt")
            tokens += int(batch["attention_mask"].sum())
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=torch.tensor([y[i] for i in idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
    secs = time.perf_counter() - t0
    print(json.dumps({"impl": "transformers+peft" if a.regime == "lora" else "transformers", "regime": a.regime, "trainable": trainable, "total": total, "tokens_per_s": tokens / secs, "seconds": secs, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
