"""The PyTorch side of bench/sft_vs_trl.sh: supervised fine-tuning with TRL's SFTTrainer (+ PEFT
for LoRA, prefix and prompt tuning) of the same model `jielong sft` tunes (a jielong checkpoint
written with `jielong export --format hf`), on the same conversations, template, batch, steps and
threads, the loss on the assistant's tokens only (`assistant_only_loss=True`).

The chat template is jielong's `builtin` one ("User: …" / "Assistant: …" lines, each reply ended
with <|endoftext|>) with the assistant's reply and its end-of-turn token inside `{% generation %}`
blocks, which is how TRL finds the tokens that carry loss (the space after "Assistant:" stays
outside: transformers drops a span whose first character maps to no token, and the byte-level
token " word" that holds it overlaps the reply, so it carries loss as in jielong). Examples are padded to the longest of their batch (no packing), as `jielong sft`
does by default.

Prints one JSON line: regime, trainable and total parameters, steps, tokens/s (positions of the
padded batches, the virtual tokens not counted, as jielong counts them) over the training loop,
seconds, the first and last logged loss. Peak RSS is measured from outside (/usr/bin/time).

    .venv-bench/bin/python bench/trl_sft.py --model HF_DIR --data chat.jsonl \
        --regime full|lora|prefix|prompt [--steps 20 --batch-size 8 --max-length 256 --threads 2]

Measured with torch 2.15.0, transformers 5.23.0, peft 0.21.2, trl 1.16.0, datasets 5.2.0.
"""

import argparse
import json
import tempfile
import time

import torch

# jielong's builtin template (crates/jielong-tokenizer/src/chat.rs, BUILTIN_SFT) with the
# assistant's span marked for TRL.
TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: "
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] | trim + eos_token }}{% endgeneration %}"
    "{% else %}{{ message['content'] | trim }}{% endif %}"
    "{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)

# The learning rates `jielong sft` and `jielong compare --regimes` use by default.
LR = {"full": 3e-4, "lora": 1e-3, "prefix": 1e-2, "prompt": 1e-2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a folder written by `jielong export --format hf`")
    ap.add_argument("--data", required=True, help="conversations as {\"messages\": [...]} JSONL")
    ap.add_argument("--regime", choices=sorted(LR), required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lora-rank", type=int, default=8)
    ap.add_argument("--num-virtual-tokens", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--attn", default="eager", help="transformers attention implementation (eager or sdpa)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in open(a.data, encoding="utf-8") if line.strip()]
    ds = Dataset.from_list([{"messages": r["messages"]} for r in rows if "messages" in r])
    tok = AutoTokenizer.from_pretrained(a.model)
    tok.chat_template = TEMPLATE
    if tok.eos_token is None:
        tok.eos_token = "<|endoftext|>"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation=a.attn)
    # Virtual tokens take their share of the context, as in jielong.
    max_length = a.max_length - (a.num_virtual_tokens if a.regime in ("prefix", "prompt") else 0)

    peft_config = None
    if a.regime == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(task_type="CAUSAL_LM", r=a.lora_rank, lora_alpha=2 * a.lora_rank, lora_dropout=0.0, target_modules="all-linear")
    elif a.regime == "prefix":
        from peft import PrefixTuningConfig

        peft_config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=a.num_virtual_tokens)
    elif a.regime == "prompt":
        from peft import PromptTuningConfig

        peft_config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=a.num_virtual_tokens)

    positions = {"n": 0}

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):
            self.secs = time.perf_counter() - self.t0

    clock = Clock()
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(
            output_dir=out,
            max_steps=a.steps,
            per_device_train_batch_size=a.batch_size,
            gradient_accumulation_steps=1,
            learning_rate=LR[a.regime],
            lr_scheduler_type="cosine",
            warmup_steps=max(1, a.steps // 10),
            weight_decay=0.0,
            max_grad_norm=1.0,
            max_length=max_length,
            assistant_only_loss=True,
            packing=False,
            use_cpu=True,
            report_to="none",
            save_strategy="no",
            logging_steps=1,
            seed=a.seed,
            dataloader_num_workers=0,
            disable_tqdm=True,
            # TRL 1.x turns activation checkpointing on by default; jielong keeps activations.
            gradient_checkpointing=False,
            # TRL 1.x also defaults to bf16 mixed precision, on CPU too (about 20x slower here
            # than f32); jielong trains in f32.
            bf16=False,
            fp16=False,
        )
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, peft_config=peft_config, callbacks=[clock])
        collate = trainer.data_collator

        def counting(examples):
            batch = collate(examples)
            positions["n"] += int(batch["input_ids"].numel())
            return batch

        trainer.data_collator = counting
        m = trainer.model
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        total = sum(p.numel() for p in m.parameters() if not p.requires_grad) if a.regime != "full" else trainable
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    print(
        json.dumps(
            {
                "impl": "trl" if a.regime == "full" else "trl+peft",
                "regime": a.regime,
                "trainable": trainable,
                "total": total,
                "steps": trainer.state.global_step,
                "tokens_per_s": positions["n"] / clock.secs,
                "seconds": clock.secs,
                "loss_first": losses[0] if losses else None,
                "loss_last": losses[-1] if losses else None,
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
