//! Decoding through the real binary: generate (greedy, sampled, beam, --n, --explain,
//! --compare, --no-cache), chat over stdin, eval, and the bad input of the decoding issue.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// `jielong generate --checkpoint run --prompt "The model"` plus `extra` (and `--max-tokens 16`
/// unless `extra` sets it).
fn gen(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["generate", "--checkpoint", "run", "--prompt", "The model"];
    args.extend_from_slice(extra);
    if !extra.contains(&"--max-tokens") {
        args.extend(["--max-tokens", "16"]);
    }
    jielong(&args, dir)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn decode_generate_strategies_and_views() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    spine_with(dir, &["model.max_seq_len=128"]);
    let gen = |extra: &[&str]| gen(dir, extra);
    // Greedy is deterministic, and the KV cache changes nothing.
    let g = gen(&["--strategy", "greedy"]);
    assert_ok(&g);
    assert!(stdout(&g).starts_with("The model"));
    assert_eq!(stdout(&g), stdout(&gen(&["--strategy", "greedy", "--no-cache"])), "cached and recomputed greedy differ");
    assert_eq!(stdout(&g), stdout(&gen(&["--temperature", "0"])), "temperature 0 is greedy");
    // Sampling: the seed decides.
    assert_eq!(stdout(&gen(&["--seed", "3"])), stdout(&gen(&["--seed", "3"])));
    // Several samples in one batch.
    let o = gen(&["--n", "3", "--seed", "1"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).matches("── sample").count(), 3, "{}", stdout(&o));
    // Beam search, n-best.
    let o = gen(&["--strategy", "beam", "--beams", "3", "--n", "2"]);
    assert_ok(&o);
    assert_eq!(stdout(&o).matches("── beam").count(), 2, "{}", stdout(&o));
    // --explain: every stage of the chain, every step.
    let o = gen(&["--explain", "--max-tokens", "3", "--top-k", "10", "--top-p", "0.5"]);
    assert_ok(&o);
    let s = stdout(&o);
    assert!(s.contains("chain: top_k(10) → top_p(0.5)"), "{s}");
    assert_eq!(s.matches("step ").count(), 3, "{s}");
    assert!(s.contains("model") && s.contains("▶"), "{s}");
    // --compare: a table with one row per strategy and the texts.
    let o = gen(&["--compare", "greedy,beam:2,sample:t=0.8,top_p=0.9"]);
    assert_ok(&o);
    let s = stdout(&o);
    assert!(s.contains("distinct-1") && s.contains("repeated 4-grams"), "{s}");
    for label in ["greedy", "beam:2", "sample:t=0.8,top_p=0.9"] {
        assert!(s.lines().any(|l| l.starts_with(label)), "no row for {label}: {s}");
    }
    // A stop string that never occurs: documented to run to --max-tokens.
    assert_ok(&gen(&["--stop", "never-in-output-§§"]));
    // An empty prompt starts from the end-of-text token.
    assert_ok(&jielong(&["generate", "--checkpoint", "run", "--prompt", "", "--max-tokens", "5"], dir));
}

#[test]
fn decode_bad_input_is_one_line_and_status_2() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    spine_with(dir, &["model.max_seq_len=128"]);
    let gen = |extra: &[&str]| gen(dir, extra);
    assert_user_error(&gen(&["--temperature", "-0.5"]), "--temperature");
    assert_user_error(&gen(&["--top-p", "0"]), "--top-p");
    assert_user_error(&gen(&["--top-p", "1.5"]), "--top-p");
    assert_user_error(&gen(&["--min-p", "-1"]), "--min-p");
    assert_user_error(&gen(&["--typical-p", "2"]), "--typical-p");
    assert_user_error(&gen(&["--strategy", "beam", "--beams", "0"]), "--beams 0");
    assert_user_error(&gen(&["--n", "0"]), "--n");
    assert_user_error(&gen(&["--samplers", "top_k,top_q"]), "top_q");
    assert_user_error(&gen(&["--compare", "greedy,nucleus"]), "nucleus");
    assert_user_error(&gen(&["--strategy", "beam", "--explain"]), "--explain");
    // The model's context is 128 tokens.
    let long = "the model reads the words ".repeat(80);
    let o = jielong(&["generate", "--checkpoint", "run", "--prompt", &long], dir);
    assert_user_error(&o, "context window is 128");
    let o = jielong(&["generate", "--checkpoint", "run", "--prompt", &long, "--truncate", "left", "--max-tokens", "4"], dir);
    assert_ok(&o);
    assert!(text(&o).contains("prompt cut from"));
    // eval
    assert_user_error(&jielong(&["eval", "--checkpoint", "run", "--text", "missing.txt"], dir), "missing.txt");
    assert_user_error(&jielong(&["eval", "--checkpoint", "run", "--text", "corpus", "--stride", "0"], dir), "--stride");
    // chat with a broken template
    std::fs::write(dir.join("bad.jinja"), "{% for m in messages %}").unwrap();
    assert_user_error(&jielong(&["chat", "--checkpoint", "run", "--template", "bad.jinja"], dir), "bad.jinja");
}

#[test]
fn decode_chat_keeps_the_kv_cache_between_turns() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    spine_with(dir, &["model.max_seq_len=128"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_jielong"))
        .args(["chat", "--checkpoint", "run", "--max-tokens", "6", "--stats", "--system", "Be brief."])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all("hello\nthe model\n/history\n/reset\nagain\n".as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    let reused: Vec<usize> = err
        .lines()
        .filter_map(|l| l.split(" tokens, ").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(reused.len(), 3, "three replies with stats: {err}");
    assert_eq!(reused[0], 0, "nothing cached before the first turn");
    assert!(reused[1] > 5, "the second turn must re-use the cached conversation: {err}");
    assert_eq!(reused[2], 0, "/reset starts over: {err}");
    let out = stdout(&o);
    assert!(out.contains("system: Be brief.") && out.contains("user: the model"), "history: {out}");
}

#[test]
fn decode_eval_reports_consistent_figures() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    spine_with(dir, &["model.max_seq_len=128"]);
    let o = jielong(&["eval", "--checkpoint", "run", "--text", "corpus", "--json"], dir);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (ce, ppl, bpb) = (v["cross_entropy"].as_f64().unwrap(), v["perplexity"].as_f64().unwrap(), v["bits_per_byte"].as_f64().unwrap());
    let (n_tokens, n_bytes) = (v["n_tokens"].as_f64().unwrap(), v["n_bytes"].as_f64().unwrap());
    assert!((ppl - ce.exp()).abs() < 1e-6 * ppl);
    assert!((bpb - ce * n_tokens / std::f64::consts::LN_2 / n_bytes).abs() < 1e-9);
    // A 6-step model is near uniform over its 400 ids, but never worse than far beyond it.
    assert!(ce > 0.5 && ce < (400f64).ln() + 1.0, "cross-entropy {ce}");
    // Every byte of the corpus counts; every token but the very first is scored.
    let corpus_bytes: u64 = ["corpus/en.txt", "corpus/zh.md"].iter().map(|f| std::fs::metadata(dir.join(f)).unwrap().len()).sum();
    assert_eq!(n_bytes as u64, corpus_bytes);
    // A smaller stride gives every token more context: the loss does not get worse by much.
    let o = jielong(&["eval", "--checkpoint", "run", "--text", "corpus", "--json", "--stride", "8"], dir);
    let v2: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v2["n_tokens"], v["n_tokens"], "each token scored once whatever the stride");
}
