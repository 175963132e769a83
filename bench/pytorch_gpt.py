#!/usr/bin/env python3
"""PyTorch reference benchmark: train jielong's GPT-2-layout (or Llama-layout) model on
random tokens.

Run (after scripts/install-bench-deps):

    .venv-bench/bin/python bench/pytorch_gpt.py --preset small
    .venv-bench/bin/python bench/pytorch_gpt.py --preset medium --steps 10 --json
    .venv-bench/bin/python bench/pytorch_gpt.py --preset small --compile
    .venv-bench/bin/python bench/pytorch_gpt.py --family llama --preset small [--compile]

The model, initialisation, loss and optimizer match the Rust implementation exactly
(see the module-level notes below), so tokens/s and MFU are comparable.

--family gpt (default). Model (GPT-2 layout, dropout 0):
    wte (vocab, n_embd), wpe (seq, n_embd)
    n_layer x { x = x + attn(ln_1(x)); x = x + mlp(ln_2(x)) }   LayerNorm eps 1e-5
    attn: c_attn n_embd -> 3 n_embd (bias), causal SDPA, c_proj n_embd -> n_embd (bias)
    mlp:  c_fc n_embd -> 4 n_embd (bias), GELU (tanh), c_proj 4 n_embd -> n_embd (bias)
    ln_f, lm_head tied to wte (no bias)
Loss: mean cross-entropy over all b*t next-token targets.
Init: N(0, 0.02) Linear/Embedding weights, c_proj weights N(0, 0.02/sqrt(2 n_layer)),
      biases 0, LayerNorm weight 1 / bias 0.
Optimizer: AdamW(lr 6e-4, betas (0.9, 0.95), eps 1e-8), weight decay 0.1 on params
      with dim >= 2 else 0; clip global grad norm to 1.0; zero_grad(set_to_none=True).
FLOPs/token = 6 N + 12 n_layer n_embd seq, N = parameters excluding wpe (tied wte once).

--family llama. Model (Llama layout, dropout 0, no biases anywhere):
    embed_tokens (vocab, n_embd), no position table
    n_layer x { x = x + attn(input_norm(x)); x = x + mlp(post_attention_norm(x)) }
        RMSNorm eps 1e-6, weight only: x / sqrt(mean(x^2) + eps) * w
    attn: q_proj n_embd -> n_head hd, k_proj / v_proj n_embd -> n_kv_head hd (hd = n_embd /
          n_head), RoPE theta 10000 on q and k (HF rotate_half convention: dimension i pairs
          with i + hd/2), grouped-query causal SDPA (query head h uses kv head h // (n_head /
          n_kv_head)), o_proj n_head hd -> n_embd
    mlp:  down_proj(silu(gate_proj(x)) * up_proj(x)), intermediate = int(2 * 4 n_embd / 3)
          rounded up to a multiple of 256
    final norm, lm_head tied to embed_tokens
Init: N(0, 0.02) Linear/Embedding weights, o_proj and down_proj N(0, 0.02/sqrt(2 n_layer)),
      RMSNorm weights 1 (from a generator seeded 1337, in module order, so both
      --llama-impl choices start from the same weights). Loss, optimizer, clipping, MFU as
      for gpt.
FLOPs/token = 6 N + 12 n_layer n_embd seq, N = all parameters (tied embedding once).
--llama-impl picks the code: "plain" (default; a plain-PyTorch module written here) or "hf"
(transformers' LlamaForCausalLM, attn_implementation="sdpa": its fastest attention choice on
CPU, ~7% faster per step than "eager" on the small preset; the loss is computed from its logits
as for plain). Both are the same math (identical weights, loss and gradients) and, in eager
mode on CPU, the same speed within noise (interleaved single-thread A/B, torch 2.15 /
transformers 5.23: within +-3%, either way); plain is the default because it does not need
transformers. Fusing q/k/v or gate/up into one matmul was no faster either.
MFU = FLOPs/token * tokens/s / peak, peak = measured f32 1024^3 matmul rate (best of 20
      after 5 warmup products, measured before and after the training run, best kept).

Output: a human-readable summary (stdout; stderr with --json) and, with --json, one
JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Preset:
    n_layer: int
    n_head: int
    n_embd: int
    seq: int
    batch: int
    vocab: int


PRESETS = {
    "small": Preset(n_layer=4, n_head=4, n_embd=256, seq=128, batch=32, vocab=4096),
    "medium": Preset(n_layer=6, n_head=6, n_embd=384, seq=256, batch=8, vocab=8192),
}


@dataclass(frozen=True)
class LlamaPreset:
    n_layer: int
    n_head: int
    n_kv_head: int
    n_embd: int
    intermediate: int
    seq: int
    batch: int
    vocab: int


def llama_intermediate(n_embd: int, multiple_of: int = 256) -> int:
    """Llama's MLP width: int(2 * 4 n_embd / 3), rounded up to a multiple of `multiple_of`."""
    hidden = int(2 * 4 * n_embd / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


LLAMA_PRESETS = {
    "small": LlamaPreset(n_layer=4, n_head=4, n_kv_head=2, n_embd=256, intermediate=768,
                         seq=128, batch=32, vocab=4096),
    "medium": LlamaPreset(n_layer=6, n_head=6, n_kv_head=3, n_embd=384, intermediate=1024,
                          seq=256, batch=8, vocab=8192),
}
assert all(p.intermediate == llama_intermediate(p.n_embd) for p in LLAMA_PRESETS.values())

LR = 6e-4
BETAS = (0.9, 0.95)
EPS = 1e-8
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0
LN_EPS = 1e-5
RMS_EPS = 1e-6
ROPE_THETA = 10000.0
SEED = 1337


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: Preset):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=True)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        hd = c // self.n_head
        q = q.view(b, t, self.n_head, hd).transpose(1, 2)
        k = k.view(b, t, self.n_head, hd).transpose(1, 2)
        v = v.view(b, t, self.n_head, hd).transpose(1, 2)
        # softmax(q k^T / sqrt(head_dim)) v with a causal mask, dropout 0.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: Preset):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=True)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: Preset):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: Preset):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.seq, cfg.n_embd)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=LN_EPS)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        proj_std = 0.02 / math.sqrt(2 * self.cfg.n_layer)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                if m is self.lm_head:
                    continue  # tied to wte, initialised as an Embedding below
                std = proj_std if name.endswith("c_proj") else 0.02
                nn.init.normal_(m.weight, mean=0.0, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _, t = idx.shape
        pos = torch.arange(t, dtype=torch.long, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        logits = self.lm_head(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def count_params(self) -> tuple[int, int]:
        """(N for the FLOP formula: all unique params except wpe, total unique params)."""
        total = sum(p.numel() for p in self.parameters())  # parameters() dedups tied wte
        return total - self.wpe.weight.numel(), total


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = RMS_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x / sqrt(mean(x^2) + eps) * w, as torch's fused op (the same math as HF's
        # LlamaRMSNorm, fewer kernels).
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def rope_tables(seq: int, head_dim: int, theta: float = ROPE_THETA) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape (seq, head_dim), HF's layout: the angles repeated for both halves."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = torch.arange(seq, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1] (HF's convention)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


class LlamaAttention(nn.Module):
    def __init__(self, cfg: LlamaPreset):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0 and cfg.n_head % cfg.n_kv_head == 0
        self.n_head, self.n_kv_head = cfg.n_head, cfg.n_kv_head
        self.hd = cfg.n_embd // cfg.n_head
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_head * self.hd, bias=False)
        self.k_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * self.hd, bias=False)
        self.v_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * self.hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * self.hd, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.n_head, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_head, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_head, self.hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # Grouped-query attention: query head h reads key/value head h // (n_head / n_kv_head).
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, self.n_head * self.hd))


class SwiGLU(nn.Module):
    def __init__(self, cfg: LlamaPreset):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.n_embd, cfg.intermediate, bias=False)
        self.up_proj = nn.Linear(cfg.n_embd, cfg.intermediate, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, cfg: LlamaPreset):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd)
        self.self_attn = LlamaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


@torch.no_grad()
def init_llama_(model: nn.Module, n_layer: int) -> None:
    """N(0, 0.02) Linear/Embedding weights, o_proj/down_proj N(0, 0.02/sqrt(2 n_layer)),
    RMSNorm weights 1. A tied lm_head is skipped (it is the embedding). Drawn from a fresh
    generator seeded with SEED, in module order (embedding, then per layer q, k, v, o, gate,
    up, down), so the plain twin and HF's LlamaForCausalLM start from identical weights."""
    proj_std = 0.02 / math.sqrt(2 * n_layer)
    gen = torch.Generator().manual_seed(SEED)
    emb = model.get_input_embeddings().weight
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            assert m.bias is None, name
            if m.weight is emb:
                continue
            std = proj_std if name.endswith(("o_proj", "down_proj")) else 0.02
            nn.init.normal_(m.weight, mean=0.0, std=std, generator=gen)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02, generator=gen)
        elif type(m).__name__ in ("RMSNorm", "LlamaRMSNorm"):
            nn.init.ones_(m.weight)


class Llama(nn.Module):
    """The plain-PyTorch Llama twin (--llama-impl plain)."""

    def __init__(self, cfg: LlamaPreset):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.n_embd)
        self.layers = nn.ModuleList([LlamaBlock(cfg) for _ in range(cfg.n_layer)])
        self.norm = RMSNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab, bias=False)
        self.lm_head.weight = self.embed_tokens.weight  # tied
        cos, sin = rope_tables(cfg.seq, cfg.n_embd // cfg.n_head)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        init_llama_(self, cfg.n_layer)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.size(1)
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.embed_tokens(idx)
        for block in self.layers:
            x = block(x, cos, sin)
        logits = self.lm_head(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def count_params(self) -> tuple[int, int]:
        """(N for the FLOP formula: all unique params, the same)."""
        total = sum(p.numel() for p in self.parameters())  # parameters() dedups tied weights
        return total, total


class HFLlama(nn.Module):
    """transformers' LlamaForCausalLM with the same config and init (--llama-impl hf)."""

    def __init__(self, cfg: LlamaPreset):
        super().__init__()
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(
            vocab_size=cfg.vocab, hidden_size=cfg.n_embd, intermediate_size=cfg.intermediate,
            num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_kv_head, max_position_embeddings=cfg.seq,
            rms_norm_eps=RMS_EPS, tie_word_embeddings=True, attention_bias=False,
            mlp_bias=False, hidden_act="silu", attention_dropout=0.0, use_cache=False,
            rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
            bos_token_id=None, eos_token_id=None, pad_token_id=None,
        )
        config._attn_implementation = "sdpa"
        self.cfg = cfg
        self.hf = LlamaForCausalLM(config)
        assert self.hf.lm_head.weight is self.hf.model.embed_tokens.weight, "not tied"
        init_llama_(self.hf, cfg.n_layer)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.hf(input_ids=idx, use_cache=False).logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    def count_params(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.parameters())
        return total, total


def make_optimizer(model: nn.Module, impl: str) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": WEIGHT_DECAY},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = {}
    if impl == "foreach":
        kwargs["foreach"] = True
    elif impl == "fused":
        kwargs["fused"] = True
    elif impl == "for-loop":
        kwargs["foreach"] = False
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS, **kwargs)


def adamw_impl_used(opt: torch.optim.Optimizer) -> str:
    """What torch's AdamW actually runs with these settings (defaults resolved)."""
    d = opt.defaults
    if d.get("fused"):
        return "fused"
    if d.get("foreach") is True:
        return "foreach"
    if d.get("foreach") is False:
        return "for-loop"
    # foreach=None: torch picks foreach only when every param/grad is on a device with
    # foreach kernels (CUDA etc.); on CPU that resolves to the single-tensor for-loop.
    from torch.optim.optimizer import _default_to_fused_or_foreach

    params = [p for g in opt.param_groups for p in g["params"]]
    _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return "foreach" if foreach else "for-loop"


def measure_peak_gflops(reps: int = 20, warmup: int = 5, n: int = 1024) -> float:
    """Best-of-`reps` f32 n x n @ n x n matmul rate in GFLOP/s (2 n^3 flops)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    for _ in range(warmup):
        torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", choices=["gpt", "llama"], default="gpt",
                    help="model layout: gpt (GPT-2, default) or llama")
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: os.cpu_count())")
    ap.add_argument(
        "--adamw",
        choices=["default", "foreach", "for-loop", "fused"],
        default="default",
        help="AdamW implementation: torch's default (on CPU this resolves to the for-loop), "
        "or force foreach / for-loop / fused",
    )
    ap.add_argument(
        "--llama-impl",
        choices=["plain", "hf"],
        default=None,
        help="--family llama only: the plain-PyTorch twin (default) or transformers' "
        "LlamaForCausalLM with SDPA attention (same math, same eager speed within noise)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    if args.llama_impl is not None and args.family != "llama":
        ap.error("--llama-impl needs --family llama")
    args.llama_impl = args.llama_impl or "plain"
    if args.compile and args.warmup < 1:
        ap.error("--compile needs --warmup >= 1 (compilation happens in warmup)")

    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)
    if args.family == "gpt":
        cfg = PRESETS[args.preset]
        model = GPT(cfg)
        model_impl = "plain"
    else:
        cfg = LLAMA_PRESETS[args.preset]
        model = Llama(cfg) if args.llama_impl == "plain" else HFLlama(cfg)
        model_impl = "plain" if args.llama_impl == "plain" else "hf-sdpa"
    model.train()
    n_params, n_params_total = model.count_params()
    flops_per_token = 6 * n_params + 12 * cfg.n_layer * cfg.n_embd * cfg.seq
    opt = make_optimizer(model, args.adamw)
    adamw = adamw_impl_used(opt)
    fwd = torch.compile(model) if args.compile else model

    # Random token ids, drawn up front so data generation is not timed.
    gen = torch.Generator().manual_seed(SEED)
    n_batches = args.warmup + args.steps
    data = torch.randint(0, cfg.vocab, (n_batches, cfg.batch, cfg.seq + 1), generator=gen)

    params = list(model.parameters())

    def step(i: int) -> torch.Tensor:
        ids = data[i]
        loss = fwd(ids[:, :-1], ids[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    log = sys.stderr if args.json else sys.stdout
    peak_before = measure_peak_gflops()

    t_warm = time.perf_counter()
    first_loss = None
    for i in range(args.warmup):
        loss = step(i)
        if first_loss is None:
            first_loss = loss.item()
    warmup_s = time.perf_counter() - t_warm

    t0 = time.perf_counter()
    for i in range(args.warmup, n_batches):
        loss = step(i)
    elapsed = time.perf_counter() - t0
    last_loss = loss.item()  # after timing: .item() would sync (no-op on CPU anyway)
    if first_loss is None:
        first_loss = last_loss

    tokens_per_s = cfg.batch * cfg.seq * args.steps / elapsed
    step_ms = elapsed / args.steps * 1e3
    # Peak measured before and after the run, best kept: a background load at one of
    # the two moments then lowers the peak less (the MFU is an upper bound either way).
    peak_gflops = max(peak_before, measure_peak_gflops())
    mfu = flops_per_token * tokens_per_s / (peak_gflops * 1e9)

    impl = "pytorch-compile" if args.compile else "pytorch-eager"
    if args.family == "gpt":
        shape = f"n_head {cfg.n_head}, n_embd {cfg.n_embd}"
        count = f"params {n_params:,} (excl. wpe; {n_params_total:,} total)"
    else:
        shape = (f"n_head {cfg.n_head}, n_kv_head {cfg.n_kv_head}, n_embd {cfg.n_embd}, "
                 f"intermediate {cfg.intermediate}")
        count = f"params {n_params:,} (tied embedding once; model code: {model_impl})"
    print(
        f"{impl} torch {torch.__version__} | {'' if args.family == 'gpt' else 'llama '}"
        f"preset {args.preset}: "
        f"n_layer {cfg.n_layer}, {shape}, seq {cfg.seq}, batch {cfg.batch}, "
        f"vocab {cfg.vocab}\n"
        f"  {count}, "
        f"FLOPs/token {flops_per_token / 1e6:.2f} M, threads {threads}, AdamW {adamw}\n"
        f"  warmup {args.warmup} steps in {warmup_s:.2f} s, loss {first_loss:.4f} -> "
        f"{last_loss:.4f} (ln vocab = {math.log(cfg.vocab):.4f})\n"
        f"  {args.steps} timed steps: {step_ms:.1f} ms/step, {tokens_per_s:,.0f} tokens/s, "
        f"{flops_per_token * tokens_per_s / 1e9:.2f} GFLOP/s model\n"
        f"  peak f32 matmul (1024^3, best of 2x20): {peak_gflops:.2f} GFLOP/s -> MFU {mfu * 100:.1f}%",
        file=log,
    )
    if args.json:
        extra = {}
        if args.family == "llama":
            extra = {"model_impl": model_impl, "n_kv_head": cfg.n_kv_head,
                     "intermediate": cfg.intermediate}
        print(
            json.dumps(
                {
                    "impl": impl,
                    "torch": torch.__version__,
                    "preset": args.preset,
                    "n_params": n_params,
                    "flops_per_token": flops_per_token,
                    "tokens_per_s": tokens_per_s,
                    "step_ms": step_ms,
                    "mfu": mfu,
                    "peak_gflops": peak_gflops,
                    "threads": threads,
                    "n_params_total": n_params_total,
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "adamw": adamw,
                    "family": args.family,
                    **extra,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
