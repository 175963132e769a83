#!/usr/bin/env python3
"""Check a jielong prefix- or prompt-tuning adapter in PEFT for real: the cross-entropy of a
text under BASE + ADAPTER must be the same in jielong and in transformers + PEFT.

Install: pip install torch==2.* transformers==5.23.0 peft==0.21.2 safetensors
(the versions this was run with; bench/requirements.txt has the rest).

Run (after `cargo build --release`):

    .venv-bench/bin/python bench/peft_soft_prompt_check.py --jielong target/release/jielong \\
        --checkpoint BASE_RUN --adapter ADAPTER_DIR --text FILE [--tol 1e-4]

What it does:
 1. `JIELONG export --checkpoint BASE_RUN --format hf --out TMP` and loads TMP with
    transformers (bench/hf_export_check.load_export: float32, eager attention, every tensor).
 2. `peft.PeftModel.from_pretrained(model, ADAPTER_DIR)`: PEFT reads jielong's
    adapter_config.json (peft_type PREFIX_TUNING / PROMPT_TUNING) and adapter_model.safetensors
    (`prompt_embeddings`) as they are.
 3. `JIELONG eval --checkpoint BASE_RUN --adapter ADAPTER_DIR --text FILE --json` gives
    jielong's cross-entropy, context (the model's context less the virtual tokens) and stride;
    the same windows are scored through the PEFT model (its logits for prompt tuning include
    the n virtual positions first: they are dropped).
 Exit status 0 when |difference| <= --tol, 1 when not, 2 when something could not be run.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hf_export_check as hx  # noqa: E402


class Peft:
    """model(input_ids=...).logits over the real tokens only, as hx.score expects."""

    def __init__(self, model):
        self.model = model

    def __call__(self, input_ids):
        out = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        t = input_ids.shape[1]

        class R:
            logits = out.logits[:, -t:]
        return R()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jielong", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--adapter", required=True, type=Path)
    ap.add_argument("--text", required=True, type=Path)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    from peft import PeftModel

    cfg = json.loads((a.adapter / "adapter_config.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        hx.run_jielong([a.jielong, "export", "--checkpoint", a.checkpoint, "--format", "hf", "--out", str(hf_dir)])
        model, tok = hx.load_export(hf_dir)
        peft_model = PeftModel.from_pretrained(model, str(a.adapter))
        peft_model.eval()
        out = hx.run_jielong([a.jielong, "eval", "--checkpoint", a.checkpoint, "--adapter", str(a.adapter),
                              "--text", str(a.text), "--json"])
        j = hx.eval_json(out)
        docs = hx.read_documents([a.text])
        ids, _ = hx.corpus_ids(tok, docs, hx.eot_id(tok))
        with torch.inference_mode():
            total, count = hx.score(Peft(peft_model), ids, j["context"], j["stride"])
    ce = total / count
    diff = abs(ce - j["cross_entropy"])
    print(f"{cfg['peft_type']} · {cfg['num_virtual_tokens']} virtual tokens · context {j['context']} · "
          f"{count} tokens: jielong {j['cross_entropy']:.6f} · PEFT {ce:.6f} · |diff| {diff:.2e}")
    if count != j["n_tokens"]:
        print(f"token counts differ: jielong {j['n_tokens']}, PEFT {count}")
        return 1
    return 0 if diff <= a.tol else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except hx.CheckError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
