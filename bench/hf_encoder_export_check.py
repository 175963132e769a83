#!/usr/bin/env python3
"""Load a jielong BERT or ALBERT export in transformers for real and check it computes what
jielong computes: masked-LM probabilities, sentence embeddings and the pair head.

Run (after scripts/install-bench-deps and `cargo build --release`):

    .venv-bench/bin/python bench/hf_encoder_export_check.py --jielong target/release/jielong \\
        --checkpoint RUN_DIR [--tol 1e-4]

RUN_DIR is a jielong run of family bert or albert trained with objective = "mlm" (the handbook's
ALBERT + SOP config in chapter 13, or the BERT + NSP one). What it does:
 1. `JIELONG export --checkpoint RUN_DIR --format hf --out DIR` into a fresh temporary folder and
    loads DIR with the class its config.json names (`architectures[0]`: BertForMaskedLM,
    BertForPreTraining, AlbertForMaskedLM or AlbertForPreTraining) through `from_pretrained(...,
    output_loading_info=True)`: a missing, unexpected or mismatched tensor is an error, so a
    weight transformers would silently initialise at random cannot pass.
 2. Masked LM: for each prompt, `JIELONG fill-mask --json --top-k 5` against softmax of
    transformers' logits at the [MASK] positions (token ids from DIR/tokenizer.json with the
    `tokenizers` library, special tokens added, padding and truncation off): the same five
    tokens in the same order, probabilities within --tol.
 3. Embeddings: `JIELONG embed --pooling mean` of the same texts (.npy) against the mean of
    transformers' last hidden states over the real tokens: every component within --tol.
 4. Pair head (PreTraining classes): transformers' `seq_relationship_logits` /
    `sop_logits` are finite and the head's weights equal the exported tensors (loaded, not
    re-initialised), which step 1 already guarantees; they are printed for information.
Exit status: 0 when everything agrees, 1 when something differs (printed), 2 when something
could not be run.

Versions used: torch 2.15.0, transformers 5.23.0, tokenizers 0.23.3 (bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

PROMPTS = [
    "the model reads the [MASK] and guesses the next word",
    "a language model learns from [MASK] text",
    "模型读入[MASK]个词，然后猜下一个",
]
TEXTS = [
    "The tokenizer splits text into pieces.",
    "Attention lets every position look at every other one.",
    "语言模型根据前面的词预测下一个词。",
]


def run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}", file=sys.stderr)
        sys.exit(2)
    return p.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jielong", default="target/release/jielong")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    import numpy as np
    import torch
    import transformers
    from tokenizers import Tokenizer

    torch.manual_seed(0)
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hf"
        run([a.jielong, "export", "--checkpoint", a.checkpoint, "--format", "hf", "--out", str(out)])
        cfg = json.loads((out / "config.json").read_text())
        arch = cfg["architectures"][0]
        cls = getattr(transformers, arch)
        model, info = cls.from_pretrained(out, output_loading_info=True, torch_dtype=torch.float32,
                                          attn_implementation="eager")
        bad = {k: v for k, v in info.items() if v}
        if bad:
            print(f"transformers {transformers.__version__} {arch}: loading info not clean: {bad}")
            return 1
        model.eval()
        print(f"loaded {arch} ({cfg['model_type']}, {sum(p.numel() for p in model.parameters()):,} parameters) "
              f"with transformers {transformers.__version__}: no missing, unexpected or mismatched tensors")
        tok = Tokenizer.from_file(str(out / "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        mask_id = tok.token_to_id("[MASK]")

        # 2. masked LM
        for prompt in PROMPTS:
            ours = [json.loads(l) for l in run([a.jielong, "fill-mask", "--checkpoint", a.checkpoint,
                                                "--json", "--top-k", "5", prompt]).splitlines() if l.strip()]
            ids = tok.encode(prompt).ids
            with torch.no_grad():
                o = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
            logits = o.logits if hasattr(o, "logits") else o.prediction_logits
            positions = [i for i, t in enumerate(ids) if t == mask_id]
            if [r["position"] for r in ours] != positions:
                failures.append(f"{prompt!r}: mask positions {[r['position'] for r in ours]} vs {positions}")
                continue
            n_real = tok.get_vocab_size()
            for r, pos in zip(ours, positions):
                p = torch.softmax(logits[0, pos, :n_real].double(), -1)
                top = torch.topk(p, 5)
                theirs = [(tok.id_to_token(int(i)), float(v)) for v, i in zip(top.values, top.indices)]
                mine = [(c["token"], c["p"]) for c in r["candidates"]]
                worst = max(abs(x[1] - y[1]) for x, y in zip(mine, theirs))
                same = [x[0] for x in mine] == [y[0] for y in theirs]
                print(f"fill-mask {prompt!r} @ {pos}: top-5 {'same' if same else 'DIFFERENT'}, "
                      f"max |Δp| {worst:.2e}; transformers: {theirs[:3]}")
                if not same or worst > a.tol:
                    failures.append(f"fill-mask {prompt!r}: ours {mine} vs transformers {theirs}")

        # 3. embeddings (mean over real tokens of the encoder's last hidden states)
        txt = Path(tmp) / "texts.txt"
        txt.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
        npy = Path(tmp) / "e.npy"
        run([a.jielong, "embed", "--checkpoint", a.checkpoint, "--pooling", "mean", str(txt), "--out", str(npy)])
        ours = np.load(npy)
        base = getattr(model, model.base_model_prefix)
        for i, t in enumerate(TEXTS):
            ids = tok.encode(t).ids
            with torch.no_grad():
                h = base(input_ids=torch.tensor([ids])).last_hidden_state[0]
            theirs = h.mean(0).numpy()
            d = float(np.abs(ours[i] - theirs).max())
            print(f"embed {t!r}: max |Δ| {d:.2e}")
            if d > a.tol:
                failures.append(f"embed {t!r}: max difference {d}")

        # 4. the pair head, for information
        if arch.endswith("ForPreTraining"):
            ids = tok.encode(TEXTS[0], TEXTS[1]).ids
            with torch.no_grad():
                o = model(input_ids=torch.tensor([ids]))
            pair = o.sop_logits if hasattr(o, "sop_logits") else o.seq_relationship_logits
            print(f"pair head logits on ({TEXTS[0]!r}, {TEXTS[1]!r}): {pair[0].tolist()}")
            if not torch.isfinite(pair).all():
                failures.append("pair head logits are not finite")

    for f in failures:
        print("DIFFERENT:", f)
    print("ok" if not failures else f"{len(failures)} difference(s)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
