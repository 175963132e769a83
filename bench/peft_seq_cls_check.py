"""Check that a `jielong finetune --task classify --regime lora` adapter loads in PEFT.

    python -m venv .venv-bench && .venv-bench/bin/pip install torch==2.15.0 transformers==5.23.0 peft==0.21.2
    .venv-bench/bin/python bench/peft_seq_cls_check.py HF_BASE_FOLDER ADAPTER_DIR "text" ["text" …]

HF_BASE_FOLDER is the Hugging Face folder the jielong base was imported from (e.g. data/minilm);
ADAPTER_DIR the folder `jielong finetune` wrote (adapter_config.json with task_type SEQ_CLS,
adapter_model.safetensors with the lora_A/lora_B tensors and the head under
`modules_to_save`, task.json with the labels). Builds transformers'
BertForSequenceClassification on the base, applies the adapter with
PeftModel.from_pretrained, and prints each text's label probabilities as one JSON line, in
the shape `jielong predict --json` prints them, to compare.
"""

import json
import sys

import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoTokenizer, BertForSequenceClassification


def main() -> None:
    hf, adapter, texts = sys.argv[1], sys.argv[2], sys.argv[3:]
    labels = json.load(open(f"{adapter}/task.json"))["labels"]
    base = BertForSequenceClassification.from_pretrained(hf, num_labels=len(labels), attn_implementation="eager")
    model = PeftModel.from_pretrained(base, adapter)
    model.eval()
    tk = AutoTokenizer.from_pretrained(hf)
    for text in texts:
        enc = tk(text, return_tensors="pt")
        with torch.no_grad():
            p = model(**enc).logits.softmax(-1)[0]
        print(json.dumps({"text": text, "probabilities": dict(zip(labels, p.tolist()))}, ensure_ascii=False))
    print(f"peft {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
