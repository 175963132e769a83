#!/usr/bin/env python3
"""Check a jielong Hugging Face export in transformers for real: greedy tokens and
cross-entropy must match jielong's own.

Run (after scripts/install-bench-deps and `cargo build --release`):

    .venv-bench/bin/python bench/hf_export_check.py --jielong target/release/jielong \\
        --checkpoint RUN_DIR --text FILE --prompt "TEXT" [--max-tokens 20]
    .venv-bench/bin/python bench/hf_export_check.py --self-test [tests/fixtures/llama-tiny]

What it does:
 1. `JIELONG export --checkpoint RUN_DIR --format hf --out DIR` into a fresh temporary folder
    (DIR does not exist beforehand; --keep keeps it, --hf-dir DIR checks an existing export
    instead), then loads DIR with AutoModelForCausalLM.from_pretrained (float32, eager
    attention; any missing / unexpected / mismatched tensor is an error) and
    AutoTokenizer.from_pretrained.
 2. Greedy: the prompt is encoded with add_special_tokens=False (an empty prompt becomes the
    end-of-text token, as jielong does) and continued with model.generate(max_new_tokens=N,
    do_sample=False, eos_token_id=None), i.e. always N argmax tokens (checked against a plain
    argmax loop). jielong runs `JIELONG generate --checkpoint RUN_DIR --prompt TEXT --strategy
    greedy --max-tokens N`, which prints the prompt and the continuation on stdout; jielong
    stops at its end-of-text token, so transformers' tokens are compared up to their first
    end-of-text. Compared: the decoded texts (skip_special_tokens=False,
    clean_up_tokenization_spaces=False), the token ids jielong reports with --explain (exact
    ids; the "step K: chose ... (id N)" lines), and, for information, the ids of jielong's
    text re-encoded (re-encoding generated text need not give back the generated ids).
 3. Cross-entropy: `JIELONG eval --checkpoint RUN_DIR --text FILE... --json` prints one JSON
    line (n_tokens, cross_entropy, perplexity, bits_per_byte, context, stride, ...). The same
    scoring in transformers: each document (a whole text file, or one JSONL record's "text";
    folders are walked like jielong does) is cleaned like jielong_text::clean (CR LF and lone CR
    to LF, control characters other than LF and tab and U+FEFF dropped, Unicode NFC), skipped
    if blank, encoded with add_special_tokens=False and followed by the end-of-text id (the
    tokenizer's `<|endoftext|>`; its eos token if it has none); then windows of `context`
    tokens moving by `stride` (both taken from jielong's JSON), each target scored once:
    for stride = context, for start in 0, ctx, 2 ctx, ...: end = min(start + ctx, n - 1),
    inputs ids[start:end], targets ids[start+1:end+1]; cross-entropy = sum of -log p over all
    targets / their count (log-softmax in float32 as jielong, sum in float64).
 Exit status: 0 when the greedy tokens agree and |cross-entropy difference| <= --tol (1e-4);
 1 when they do not (the first difference is printed); 2 when something could not be run.

Assumption: the text is plain UTF-8 with LF line endings; jielong's cleaning is replicated
here (NFC, LF, control characters) but is then a no-op, so the comparison does not hinge on
it. Invalid UTF-8 is replaced with U+FFFD in both (Python's and Rust's replacement of maximal
invalid subsequences agree for ordinary text); Rust's str::trim and Python's str.strip
differ only on a few exotic characters, which cleaning removes first.

--self-test [DIR] (DIR: a save_pretrained folder, default tests/fixtures/llama-tiny) checks
the transformers half without jielong: it loads DIR, reproduces DIR/expected.safetensors
(logits, loss, greedy) when present, cross-checks the windowed scoring against HF's own
labels= loss, then gives DIR a 96-token character-level tokenizer (the fixture folders have
none) and runs the whole check above against a stand-in `jielong` (this script, answering
export/generate/eval with transformers) three times: untouched (must pass), with the
cross-entropy skewed by 1e-3 and with one greedy token changed (both must fail).

Versions used: torch 2.15.0, transformers 5.23.0, tokenizers 0.23.3 (bench/requirements.txt).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import torch
import torch.nn.functional as F

EOT = "<|endoftext|>"
TEXT_EXTENSIONS = ("txt", "md", "text", "jsonl", "markdown", "rst")  # jielong_text's list
EXPORT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "generation_config.json")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class CheckError(Exception):
    """Something could not be run or read (exit status 2)."""


# ---------------------------------------------------------------------------------------------
# jielong's text reading and cleaning, replicated (crates/jielong-text)


def clean(text: str) -> str:
    """jielong_text::clean: CR LF / lone CR -> LF; drop U+FEFF and control characters (Unicode
    general category Cc, Rust's char::is_control) other than LF and tab; then NFC."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\r":
            if i + 1 < n and text[i + 1] == "\n":
                i += 1
            out.append("\n")
        elif c in "\n\t":
            out.append(c)
        elif c == "\ufeff" or unicodedata.category(c) == "Cc":
            pass
        else:
            out.append(c)
        i += 1
    return unicodedata.normalize("NFC", "".join(out))


def list_files(inputs: list[Path]) -> list[Path]:
    """jielong_text::list_files: files as given, folders walked in sorted order (hidden
    names skipped, only the text extensions)."""
    files: list[Path] = []

    def walk(d: Path) -> None:
        for p in sorted(d.iterdir()):
            if p.name.startswith("."):
                continue
            if p.is_dir():
                walk(p)
            elif p.suffix[1:].lower() in TEXT_EXTENSIONS:
                files.append(p)

    for p in inputs:
        if p.is_dir():
            before = len(files)
            walk(p)
            if len(files) == before:
                raise CheckError(f"{p}: folder holds no text files")
        elif p.is_file():
            files.append(p)
        else:
            raise CheckError(f"{p}: no such file or folder")
    return files


def read_documents(inputs: list[Path]) -> list[str]:
    """jielong_text::read_corpus: one document per text file, one per JSONL line with a
    string "text" field."""
    docs: list[str] = []
    for path in list_files(inputs):
        data = path.read_bytes()
        if b"\0" in data:
            raise CheckError(f"{path}: not a text file (NUL bytes)")
        text = data.decode("utf-8", errors="replace")
        if path.suffix.lower() == ".jsonl":
            lines = text.split("\n")  # Rust's str::lines: LF, with a trailing CR dropped
            if lines and lines[-1] == "":
                lines.pop()
            for k, line in enumerate(lines):
                line = line.removesuffix("\r")
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CheckError(f"{path}:{k + 1}: not valid JSON ({e})") from None
                if isinstance(value, dict) and isinstance(value.get("text"), str):
                    docs.append(value["text"])
        else:
            docs.append(text)
    return docs


# ---------------------------------------------------------------------------------------------
# The transformers side


def load_export(folder: Path):
    """(model, tokenizer) from a save_pretrained-style folder, float32, eager attention."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    model, info = AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    bad = {k: sorted(map(str, v)) for k, v in info.items() if k != "error_msgs" and v}
    if bad or info.get("error_msgs"):
        raise CheckError(f"{folder}: transformers did not load every tensor: {bad} "
                         f"{info.get('error_msgs') or ''}")
    model.eval()
    tok = AutoTokenizer.from_pretrained(folder) if (folder / "tokenizer.json").exists() \
        or (folder / "tokenizer_config.json").exists() else None
    return model, tok


def eot_id(tok) -> int | None:
    """The end-of-text id: the `<|endoftext|>` token, else the tokenizer's eos."""
    tid = tok.convert_tokens_to_ids(EOT)
    if isinstance(tid, int) and tid != tok.unk_token_id and tok.convert_ids_to_tokens(tid) == EOT:
        return tid
    return tok.eos_token_id


def encode(tok, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False).input_ids)


def decode(tok, ids: list[int]) -> str:
    return tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def max_positions(model) -> int | None:
    c = model.config
    return getattr(c, "max_position_embeddings", None) or getattr(c, "n_positions", None)


@torch.inference_mode()
def greedy(model, prompt: list[int], n: int, pad_id: int = 0) -> list[int]:
    """n new tokens by model.generate(do_sample=False), EOS stopping off, checked against an
    argmax loop over full forwards."""
    x = torch.tensor([prompt], dtype=torch.int64)
    # Keywords, not a GenerationConfig: transformers 5 fills a GenerationConfig's unset fields
    # (eos_token_id=None included) from the model's generation_config.json. The penalties are
    # reset in case the export's generation_config.json sets any.
    out = model.generate(
        x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=0,
        do_sample=False, num_beams=1, eos_token_id=None, pad_token_id=pad_id,
        repetition_penalty=1.0, no_repeat_ngram_size=0,
    )
    new = out[0, len(prompt):].tolist()
    seq = x
    for _ in range(n):
        nxt = model(input_ids=seq).logits[0, -1].argmax()
        seq = torch.cat([seq, nxt.view(1, 1)], dim=1)
    loop = seq[0, len(prompt):].tolist()
    if new != loop:
        raise CheckError(f"model.generate {new} disagrees with a plain argmax loop {loop}")
    return new


def windows(n: int, ctx: int, stride: int) -> list[tuple[int, int, int]]:
    """jielong eval's windows over n tokens: (start, end, first scored target); inputs
    ids[start:end], targets ids[first..end] (inclusive), every target 1..n-1 exactly once."""
    out = []
    scored_to, start = 1, 0
    while scored_to < n:
        end = min(start + ctx, n - 1)
        if end + 1 > scored_to:
            out.append((start, end, max(scored_to, start + 1)))
            scored_to = end + 1
        if end == n - 1:
            break
        start += stride
    return out


@torch.inference_mode()
def score(model, ids: list[int], ctx: int, stride: int, batch_size: int = 4) -> tuple[float, int]:
    """(sum of -log p over every target once, number of targets), as jielong eval."""
    wins = windows(len(ids), ctx, stride)
    total, count = 0.0, 0
    i = 0
    while i < len(wins):
        t = wins[i][1] - wins[i][0]
        group = [wins[i]]
        while (i + len(group) < len(wins) and len(group) < batch_size
               and wins[i + len(group)][1] - wins[i + len(group)][0] == t):
            group.append(wins[i + len(group)])
        i += len(group)
        inputs = torch.tensor([ids[s:e] for s, e, _ in group], dtype=torch.int64)
        targets = torch.tensor([ids[s + 1:e + 1] for s, e, _ in group], dtype=torch.int64)
        logits = model(input_ids=inputs).logits.float()  # (b, t, v)
        logp = F.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        for k, (s, e, first) in enumerate(group):
            row = logp[k, first - s - 1:].double()
            total -= row.sum().item()
            count += row.numel()
    return total, count


def corpus_ids(tok, docs: list[str], eot: int | None) -> tuple[list[int], int]:
    """(ids, UTF-8 bytes): every cleaned, non-blank document followed by end-of-text."""
    ids: list[int] = []
    n_bytes = 0
    for doc in docs:
        text = clean(doc)
        if not text.strip():
            continue
        n_bytes += len(text.encode("utf-8"))
        ids.extend(encode(tok, text))
        if eot is not None:
            ids.append(eot)
    return ids, n_bytes


def raw_tokenizer_ids(folder: Path, texts: list[str]) -> list[list[int]] | None:
    """The same texts encoded by tokenizer.json directly (tokenizers, no transformers)."""
    path = folder / "tokenizer.json"
    if not path.exists():
        return None
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(path))
    return [e.ids for e in raw.encode_batch_fast(texts, add_special_tokens=False)]


# ---------------------------------------------------------------------------------------------
# The jielong side


def run_jielong(cmd: list[str]) -> str:
    shown = " ".join(map(_quote, cmd))
    print(f"$ {shown}", flush=True)
    try:
        p = subprocess.run(cmd, capture_output=True)
    except OSError as e:
        raise CheckError(f"cannot run {cmd[0]}: {e}") from None
    out = p.stdout.decode("utf-8", errors="replace")
    if p.returncode != 0:
        err = p.stderr.decode("utf-8", errors="replace").strip()
        raise CheckError(f"`{shown}` exited with status {p.returncode}:\n{err}\n{out}".rstrip())
    return out


def _quote(s: str) -> str:
    return s if re.fullmatch(r"[\w./=:,+-]+", s) else "'" + s.replace("'", "'\\''") + "'"


def generate_text(stdout: str, prompt: str) -> str:
    """The continuation in `jielong generate` output: the prompt, the continuation, one LF."""
    if not stdout.startswith(prompt):
        raise CheckError(f"jielong generate's output does not start with the prompt: {stdout[:200]!r}")
    rest = stdout[len(prompt):]
    return rest[:-1] if rest.endswith("\n") else rest


STEP_RE = re.compile(r"^step (\d+): chose .* \(id (\d+)\)$")


def explain_ids(stdout: str) -> list[int] | None:
    """Token ids from `jielong generate --explain` ("step K: chose PIECE (id N)" lines)."""
    ids = []
    for line in stdout.splitlines():
        m = STEP_RE.match(line)
        if m:
            if int(m.group(1)) != len(ids) + 1:
                return None
            ids.append(int(m.group(2)))
    return ids or None


def eval_json(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            v = json.loads(line)
            missing = {"n_tokens", "cross_entropy", "context"} - set(v)
            if missing:
                raise CheckError(f"jielong eval --json lacks {sorted(missing)}: {line}")
            return v
    raise CheckError(f"no JSON line in jielong eval's output: {stdout[:300]!r}")


# ---------------------------------------------------------------------------------------------
# The check


def first_diff(a: list | str, b: list | str) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check(args, hf_dir: Path) -> int:
    jl = [args.jielong]
    ckpt = str(args.checkpoint)
    present = [f for f in EXPORT_FILES if (hf_dir / f).exists()]
    absent = [f for f in EXPORT_FILES if f not in present]
    print(f"export folder {hf_dir}: {', '.join(present)}" + (f"; MISSING {', '.join(absent)}" if absent else ""))
    model, tok = load_export(hf_dir)
    if tok is None:
        raise CheckError(f"{hf_dir}: no tokenizer.json / tokenizer_config.json")
    eot = eot_id(tok)
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    print(f"transformers: {type(model).__name__} ({cfg.model_type}), {n_params:,} parameters, "
          f"context {max_positions(model)}, vocab {cfg.vocab_size}; tokenizer "
          f"{type(tok).__name__} ({len(tok)} ids), end-of-text {EOT!r} = {eot}"
          + (f", eos_token {tok.eos_token!r} = {tok.eos_token_id}" if tok.eos_token_id != eot else ""))
    if eot is None:
        print(f"  warning: the tokenizer has no {EOT} and no eos token; documents are not terminated")
    failures = []

    # --- (a) greedy
    n = args.max_tokens
    prompt_ids = encode(tok, args.prompt)
    if not prompt_ids:
        if eot is None:
            raise CheckError("empty prompt and no end-of-text token")
        prompt_ids = [eot]
    ctx = max_positions(model)
    if ctx is not None and len(prompt_ids) + n > ctx:
        print(f"  warning: prompt ({len(prompt_ids)} tokens) + {n} new tokens exceed the context {ctx}")
    hf_new = greedy(model, prompt_ids, n, pad_id=eot if eot is not None else 0)
    hf_cut = hf_new[: hf_new.index(eot)] if eot in hf_new else hf_new
    hf_text = decode(tok, hf_cut)

    base = jl + ["generate", "--checkpoint", ckpt, "--prompt", args.prompt, "--strategy", "greedy",
                 "--max-tokens", str(n)]
    jl_text = generate_text(run_jielong(base), args.prompt)
    jl_ids = explain_ids(run_jielong(base + ["--explain", "--explain-top", "1"]))
    if jl_ids and eot is not None and jl_ids[-1] == eot:
        jl_ids = jl_ids[:-1]

    print(f"\n(a) greedy, prompt {args.prompt!r} = {len(prompt_ids)} tokens, {n} new tokens")
    ended = f" (then end-of-text at new token {len(hf_cut) + 1})" if len(hf_cut) < n else ""
    print(f"  transformers: {hf_cut}{ended}\n                {hf_text!r}")
    print(f"  jielong:      {jl_ids if jl_ids is not None else '(no ids from --explain)'}\n"
          f"                {jl_text!r}")
    if jl_text == hf_text:
        print("  texts: identical")
    else:
        i = first_diff(jl_text, hf_text)
        print(f"  texts: DIFFER at character {i}: jielong {jl_text[i:i + 30]!r} vs "
              f"transformers {hf_text[i:i + 30]!r}")
        failures.append("greedy text")
    if jl_ids is not None:
        if jl_ids == hf_cut:
            print(f"  token ids (--explain): identical ({len(hf_cut)} tokens)")
        else:
            i = first_diff(jl_ids, hf_cut)
            a = jl_ids[i] if i < len(jl_ids) else None
            b = hf_cut[i] if i < len(hf_cut) else None
            print(f"  token ids (--explain): DIFFER at new token {i}: jielong {a} "
                  f"{decode(tok, [a]) if a is not None else '(ended)'!r} vs transformers {b} "
                  f"{decode(tok, [b]) if b is not None else '(ended)'!r}")
            failures.append("greedy token ids")
    re_ids = encode(tok, jl_text)
    if re_ids == hf_cut:
        print("  jielong's text re-encoded: the same ids")
    else:
        i = first_diff(re_ids, hf_cut)
        note = "" if jl_ids is not None or jl_text != hf_text else " (texts identical: " \
            "re-encoding is not unique; not counted as a failure)"
        print(f"  jielong's text re-encoded: differs from transformers' ids at token {i}{note}")
        if jl_ids is None and jl_text != hf_text:
            failures.append("greedy re-encoded ids")

    # --- (b) cross-entropy
    jv = eval_json(run_jielong(jl + ["eval", "--checkpoint", ckpt, "--text", *map(str, args.text), "--json"]))
    ctx, stride = int(jv["context"]), int(jv.get("stride", jv["context"]))
    docs = read_documents(list(args.text))
    ids, n_bytes = corpus_ids(tok, docs, eot)
    if len(ids) < 2:
        raise CheckError("no text to evaluate")
    if max_positions(model) is not None and ctx > max_positions(model):
        print(f"  warning: jielong's context {ctx} exceeds the export's {max_positions(model)}")
    raw = raw_tokenizer_ids(hf_dir, [clean(d) for d in docs if clean(d).strip()])
    if raw is not None:
        flat = [i for r in raw for i in (r + ([eot] if eot is not None else []))]
        if flat != ids:
            k = first_diff(flat, ids)
            print(f"  warning: AutoTokenizer and tokenizer.json (tokenizers) encode the text "
                  f"differently from token {k}")
    total, count = score(model, ids, ctx, stride, args.batch_size)
    ce = total / count
    jce = float(jv["cross_entropy"])
    diff = abs(ce - jce)
    print(f"\n(b) cross-entropy on {', '.join(map(str, args.text))}: {len(docs)} documents, "
          f"{n_bytes} bytes, context {ctx}, stride {stride}")
    print(f"  {'':14s}{'tokens':>8s} {'cross-entropy':>16s} {'perplexity':>12s} {'bits/byte':>10s}")
    print(f"  {'jielong':14s}{jv['n_tokens']:>8} {jce:16.8f} {jv.get('perplexity', math.exp(jce)):12.4f} "
          f"{jv.get('bits_per_byte', float('nan')):10.5f}")
    print(f"  {'transformers':14s}{count:>8} {ce:16.8f} {math.exp(ce):12.4f} "
          f"{total / math.log(2) / n_bytes:10.5f}")
    print(f"  |difference| {diff:.3e} (tolerance {args.tol:g})")
    if int(jv["n_tokens"]) != count:
        print(f"  token counts DIFFER: jielong {jv['n_tokens']}, transformers {count} "
              "(the tokenizers or the text reading disagree)")
        failures.append("token count")
    if "n_bytes" in jv and int(jv["n_bytes"]) != n_bytes:
        print(f"  note: jielong counted {jv['n_bytes']} bytes, this script {n_bytes}")
    if not diff <= args.tol:
        failures.append("cross-entropy")

    print("\nresult: " + ("OK" if not failures else "FAILED: " + ", ".join(failures)))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="See the module docstring for the details.")
    ap.add_argument("--jielong", default=str(REPO / "target/release/jielong"), help="the jielong binary")
    ap.add_argument("--checkpoint", type=Path, help="a jielong run folder or ckpt-NNNNNN folder")
    ap.add_argument("--text", type=Path, nargs="+", help="text files (or folders / .jsonl) to score")
    ap.add_argument("--prompt", help="prompt for the greedy comparison")
    ap.add_argument("--max-tokens", type=int, default=20, help="new tokens (default 20)")
    ap.add_argument("--tol", type=float, default=1e-4, help="cross-entropy tolerance (default 1e-4)")
    ap.add_argument("--batch-size", type=int, default=4, help="windows per forward (default 4)")
    ap.add_argument("--hf-dir", type=Path, help="check this existing export instead of running export")
    ap.add_argument("--keep", action="store_true", help="keep the temporary export folder")
    ap.add_argument("--self-test", nargs="?", const=REPO / "tests/fixtures/llama-tiny", type=Path,
                    metavar="DIR", help="check the transformers half on a save_pretrained folder "
                    "(default tests/fixtures/llama-tiny), without jielong")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("THREADS", "0")) or os.cpu_count() or 1)
    try:
        if args.self_test is not None:
            return self_test(args.self_test)
        for name in ("checkpoint", "text", "prompt"):
            if getattr(args, name) is None:
                ap.error(f"--{name} is required (or use --self-test)")
        if args.max_tokens < 1:
            ap.error("--max-tokens must be >= 1")
        if args.hf_dir is not None:
            return check(args, args.hf_dir)
        tmp = Path(tempfile.mkdtemp(prefix="jielong-hf-export-"))
        try:
            out = tmp / "hf"
            run_jielong([args.jielong, "export", "--checkpoint", str(args.checkpoint), "--format", "hf",
                         "--out", str(out)])
            return check(args, out)
        finally:
            if args.keep:
                print(f"export kept in {tmp / 'hf'}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    except CheckError as e:
        print(f"hf_export_check: error: {e}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------------
# Self-test: the transformers half on a fixture folder, and the whole check against a stand-in


def char_tokenizer(vocab_size: int):
    """A character-level tokenizer for a tiny model: ' '..'}' (94), LF, then <|endoftext|>."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(c): c - 32 for c in range(32, 126)}
    vocab["\n"] = len(vocab)
    vocab[EOT] = len(vocab)
    if len(vocab) > vocab_size:
        raise CheckError(f"the self-test tokenizer needs {len(vocab)} ids; the model has {vocab_size}")
    t = Tokenizer(models.WordLevel(vocab, unk_token=EOT))
    t.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), "isolated")
    t.decoder = decoders.Fuse()
    t.add_special_tokens([EOT])
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token=EOT)


SELF_TEST_TEXT = """\
Jielong is a word game: one player says a word, the next continues from its last sound.
A language model plays the same game with tokens; this file is only here to be scored.

The quick brown fox jumps over the lazy dog. 0123456789 (a, b) [c; d] {e: f} "g" 'h'
Line endings are LF, the characters plain ASCII, so cleaning the text changes nothing.
"""


def fake_jielong(argv: list[str]) -> int:
    """A stand-in for `jielong export|generate|eval` (self-test only): the checkpoint is a
    save_pretrained folder with a tokenizer. JIELONG_FAKE_SKEW=ce adds 1e-3 to the
    cross-entropy, =token changes the last greedy token."""
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd")
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--format")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--prompt")
    ap.add_argument("--strategy")
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--explain-top", type=int)
    ap.add_argument("--text", type=Path, nargs="+")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    skew = os.environ.get("JIELONG_FAKE_SKEW", "")
    if a.cmd == "export":
        assert a.format == "hf" and not a.out.exists()
        shutil.copytree(a.checkpoint, a.out)
        return 0
    model, tok = load_export(a.checkpoint)
    eot = eot_id(tok)
    if a.cmd == "generate":
        assert a.strategy == "greedy"
        prompt = encode(tok, a.prompt) or [eot]
        new = greedy(model, prompt, a.max_tokens, pad_id=eot)
        if eot in new:  # jielong stops at end-of-text (and does not print it)
            new = new[: new.index(eot) + 1]
        if skew == "token":
            new[-1] = (new[-1] + 1) % eot  # another ordinary character
        shown = [i for i in new if i != eot]
        if a.explain:
            print("chain: greedy")
            for k, i in enumerate(new):
                print(f"\nstep {k + 1}: chose {decode(tok, [i])!r} (id {i})")
                print(f"  greedy                          1 left │ ▶{decode(tok, [i])!r} 1.000")
            print(f"\ntext: {a.prompt}{decode(tok, shown)}")
        else:
            print(a.prompt + decode(tok, shown))
            print(f"[{len(shown)} tokens · 0.0 tokens/s]", file=sys.stderr)
        return 0
    if a.cmd == "eval":
        ctx = max_positions(model)
        docs = read_documents(a.text)
        ids, n_bytes = corpus_ids(tok, docs, eot)
        total, count = score(model, ids, ctx, ctx)
        ce = total / count + (1e-3 if skew == "ce" else 0.0)
        print(json.dumps({"n_documents": len(docs), "n_bytes": n_bytes, "n_tokens": count,
                          "context": ctx, "stride": ctx, "cross_entropy": ce,
                          "perplexity": math.exp(ce), "bits_per_byte": ce * count / math.log(2) / n_bytes}))
        return 0
    print(f"fake jielong: unknown command {a.cmd}", file=sys.stderr)
    return 2


def self_test(folder: Path) -> int:
    import transformers
    from safetensors.torch import load_file

    print(f"self-test on {folder} (torch {torch.__version__}, transformers {transformers.__version__})")
    model, _ = load_export(folder)
    ok = True

    def report(name: str, good: bool, detail: str) -> None:
        nonlocal ok
        ok &= good
        print(f"  {'ok  ' if good else 'FAIL'} {name}: {detail}")

    # 1. jielong's window rule (crates/jielong-cli/src/cmd/eval.rs's unit test cases)
    for n, c, s in [(10, 4, 4), (10, 4, 2), (11, 4, 1), (3, 8, 8), (9, 4, 3), (1000, 64, 64)]:
        seen = [0] * n
        for st, e, first in windows(n, c, s):
            assert e - st <= c and first > st
            for j in range(first, e + 1):
                seen[j] += 1
        assert seen[0] == 0 and all(x == 1 for x in seen[1:]), (n, c, s, seen)
    report("windows", True, "every target scored once (jielong's test cases)")

    # 2. the fixture's own expectations
    exp_path = folder / "expected.safetensors"
    if exp_path.exists():
        exp = load_file(exp_path)
        with torch.inference_mode():
            logits = model(input_ids=exp["ids"]).logits
        err = (logits - exp["logits"]).abs().max().item()
        report("logits", err <= 1e-5, f"max |logits - expected| {err:.2e}")
        if "greedy" in exp:
            p = exp["prompt"][0].tolist()
            new = greedy(model, p, exp["greedy"].shape[1] - len(p))
            report("greedy", new == exp["greedy"][0, len(p):].tolist(), f"{new}")
        # windowed scoring of each row (context = the whole row, and 5 with stride 5) against
        # the fixture's loss and against HF's labels= loss
        ids = exp["ids"]
        tot = sum(score(model, row.tolist(), ids.shape[1], ids.shape[1])[0] for row in ids)
        cnt = ids.shape[0] * (ids.shape[1] - 1)
        d = abs(tot / cnt - exp["loss"].item())
        report("score, one window per row", d <= 1e-5, f"{tot / cnt:.8f} vs expected loss "
               f"{exp['loss'].item():.8f} (|diff| {d:.1e})")
    flat = torch.randint(0, model.config.vocab_size, (301,), generator=torch.Generator().manual_seed(3)).tolist()
    c = 16
    tot, cnt = score(model, flat, c, c, batch_size=3)
    ref_tot = 0.0
    with torch.inference_mode():
        for s in range(0, len(flat) - 1, c):
            chunk = torch.tensor([flat[s:min(s + c, len(flat) - 1) + 1]])
            ref_tot += model(input_ids=chunk, labels=chunk).loss.item() * (chunk.shape[1] - 1)
    d = abs(tot / cnt - ref_tot / (len(flat) - 1))
    report("score, 301 tokens in windows of 16", cnt == len(flat) - 1 and d <= 1e-5,
           f"{tot / cnt:.8f} vs HF labels= loss {ref_tot / (len(flat) - 1):.8f} (|diff| {d:.1e})")
    # stride < context: each later target has >= context - stride tokens of history
    tot_s, cnt_s = score(model, flat, c, 4)
    report("score, stride 4", cnt_s == len(flat) - 1, f"{tot_s / cnt_s:.6f} ({cnt_s} targets)")
    assert clean("\ufeffcafe\u0301\r\nline\rnext\u0007\tend") == "caf\u00e9\nline\nnext\tend"
    report("clean", True, "jielong_text's test case")

    # 3. the whole check against the stand-in jielong
    with tempfile.TemporaryDirectory(prefix="hf-export-self-test-") as tmp:
        tmp = Path(tmp)
        ckpt = tmp / "checkpoint"
        ckpt.mkdir()
        for f in ("config.json", "model.safetensors", "generation_config.json"):
            if (folder / f).exists():
                shutil.copy(folder / f, ckpt / f)
        char_tokenizer(model.config.vocab_size).save_pretrained(ckpt)
        text = tmp / "text.txt"
        text.write_text(SELF_TEST_TEXT, encoding="utf-8")
        fake = tmp / "jielong"
        fake.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(HERE)!r})\n"
                        "import hf_export_check as h\nsys.exit(h.fake_jielong(sys.argv[1:]))\n")
        fake.chmod(0o755)
        base = ["--jielong", str(fake), "--checkpoint", str(ckpt), "--text", str(text),
                "--prompt", "The quick brown", "--max-tokens", "12"]
        for skew, want in [("", 0), ("ce", 1), ("token", 1)]:
            os.environ["JIELONG_FAKE_SKEW"] = skew
            print(f"\n--- full check against the stand-in jielong, skew {skew or 'none'!r} "
                  f"(expect exit {want})")
            got = main(base)
            report(f"full check, skew {skew or 'none'}", got == want, f"exit {got}")
        os.environ.pop("JIELONG_FAKE_SKEW", None)
    print(f"\nself-test: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
