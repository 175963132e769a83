//! `jielong sft` through the binary: a full run and a LoRA run on a tiny spine checkpoint, the
//! template found by chat and generate --chat without flags, adapters applied with --adapter,
//! and bad input as one-line errors with status 2.

use crate::common::*;
use std::path::Path;

fn write_data(dir: &Path) {
    let lines: Vec<String> = ["step", "model", "words", "guess", "训练", "模型"]
        .iter()
        .cycle()
        .take(24)
        .map(|w| {
            let r: String = w.chars().rev().collect();
            serde_json::json!({"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": r}]}).to_string()
        })
        .collect();
    std::fs::write(dir.join("chat.jsonl"), lines.join("\n") + "\n{broken\n").unwrap();
}

#[test]
fn cli_sft_full_and_lora_then_chat_with_the_saved_template() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    spine(d);
    write_data(d);
    let o = jielong(&["sft", "--checkpoint", "run", "--data", "chat.jsonl", "--template", "chatml", "--max-steps", "4", "--out", "tuned"], d);
    assert_ok(&o);
    let out = text(&o);
    assert!(out.contains("1 of 25 lines skipped") && out.contains("line 25: not JSON"), "{out}");
    assert!(out.contains("added tokens <|im_end|> <|im_start|>") && out.contains("loss on the assistant's tokens"), "{out}");
    // eval --chat recomputes, from the saved run and its saved template, the assistant-token
    // loss sft reported after training; the base cannot read the chatml turn tokens.
    let after: f64 = out.split(" before → ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap();
    let o = jielong(&["eval", "--checkpoint", "tuned", "--chat", "chat.jsonl", "--json"], d);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert_eq!(v["n_conversations"], 24, "{v}");
    assert!((v["assistant_loss"].as_f64().unwrap() - after).abs() < 1e-3, "eval --chat {v} against sft's {after}");
    assert_user_error(&jielong(&["eval", "--checkpoint", "run", "--chat", "chat.jsonl", "--template", "chatml"], d), "tokenizer lacks (<|im_end|>");
    // chat and generate --chat render with the template saved beside the checkpoint.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_jielong"))
        .args(["chat", "--checkpoint", "tuned", "--greedy", "--max-tokens", "3"])
        .current_dir(d)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"hello\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_ok(&o);
    let o = jielong(&["generate", "--checkpoint", "tuned", "--chat", "--prompt", "model", "--strategy", "greedy", "--max-tokens", "3"], d);
    assert_ok(&o);
    assert!(text(&o).contains("<|im_start|>user\nmodel<|im_end|>\n<|im_start|>assistant\n"), "{}", text(&o));

    // LoRA: an adapter folder in PEFT's layout, applied with --adapter.
    let o = jielong(&["sft", "--checkpoint", "run", "--data", "chat.jsonl", "--regime", "lora", "--lora-rank", "2", "--max-steps", "3", "--out", "adapter"], d);
    assert_ok(&o);
    assert!(d.join("adapter/adapter_config.json").is_file() && d.join("adapter/adapter_model.safetensors").is_file());
    let o = jielong(&["generate", "--checkpoint", "run", "--adapter", "adapter", "--chat", "--prompt", "words", "--strategy", "greedy", "--max-tokens", "3"], d);
    assert_ok(&o);
    assert!(text(&o).contains("User: words\nAssistant:"), "{}", text(&o));
    let o = jielong(&["eval", "--checkpoint", "run", "--adapter", "adapter", "--text", "corpus"], d);
    assert_ok(&o);
    // The adapter on another base; the adapter folder passed as a checkpoint.
    let o = jielong(&["generate", "--checkpoint", "tuned", "--adapter", "adapter", "--prompt", "x"], d);
    assert_user_error(&o, "trained on another base");
    let o = jielong(&["chat", "--checkpoint", "adapter"], d);
    assert_user_error(&o, "is an adapter, not a checkpoint");
}

#[test]
fn cli_sft_bad_input_gives_one_line_and_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    spine(d);
    write_data(d);
    std::fs::write(d.join("noreply.jsonl"), "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n").unwrap();
    std::fs::write(d.join("robot.jsonl"), "{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"x\"}]}\n").unwrap();
    let sft = |data: &str, extra: &[&str]| {
        let mut args = vec!["sft", "--checkpoint", "run", "--data", data, "--max-steps", "1", "--out", "o"];
        args.extend_from_slice(extra);
        jielong(&args, d)
    };
    assert_user_error(&sft("noreply.jsonl", &[]), "noreply.jsonl:1: no assistant turn");
    assert_user_error(&sft("robot.jsonl", &[]), "unknown role `robot`");
    assert_user_error(&sft("chat.jsonl", &["--strict"]), "chat.jsonl:25: not JSON");
    assert_user_error(&sft("chat.jsonl", &["--template", "alpaca"]), "unknown chat template");
    assert_user_error(&sft("chat.jsonl", &["--regime", "lora", "--template", "chatml"]), "cannot add tokens");
    assert_user_error(&sft("chat.jsonl", &["--regime", "lora", "--lora-targets", "nothing"]), "match no linear layer");
    assert_user_error(&sft("missing.jsonl", &[]), "missing.jsonl");
    std::fs::write(d.join("fail.jinja"), "{% for m in messages %}{{ raise_exception('cannot render ' + m.role) }}{% endfor %}").unwrap();
    assert_user_error(&sft("chat.jsonl", &["--template", "fail.jinja"]), "chat.jsonl:1: chat template fail.jinja failed");
    assert!(!d.join("o").join("sft.json").exists(), "a failed run left files behind");
}

#[test]
fn cli_data_chat_converts_the_chatterbot_corpus() {
    // The real corpus from scripts/fetch-data (chatterbot-corpus 1.3.3). The expected figures
    // come from PyYAML 6.0.3 reading the same files (conversations with a reply, last lines
    // without one, messages, the first and last conversation). One entry of english/trivia.yml
    // is a single string instead of a list of lines (its "- '22'" is inside the scalar): it is
    // reported, not converted.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cb = repo_root().join("data/chatterbot");
    assert!(cb.join("english/ai.yml").is_file(), "run scripts/fetch-data first: {} is missing", cb.display());
    let (en, zh) = (cb.join("english"), cb.join("chinese"));
    let o = jielong(&["data", "chat", "--from", "chatterbot", en.to_str().unwrap(), zh.to_str().unwrap(), "--out", "cb.jsonl"], d);
    assert_ok(&o);
    let out = text(&o);
    assert!(out.contains("wrote 2492 conversations from 38 file(s)") && out.contains("50 last line(s) with no reply"), "{out}");
    assert!(out.contains("1 conversation(s) skipped (") && out.contains("trivia.yml conversation 14: a scalar instead of a list of lines"), "{out}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.join("cb.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2492);
    assert_eq!(lines.iter().map(|l| l["messages"].as_array().unwrap().len()).sum::<usize>(), 5300);
    assert_eq!(lines[0]["messages"][0], serde_json::json!({"role": "user", "content": "What is AI?"}));
    assert_eq!(lines[2491]["messages"][1], serde_json::json!({"role": "assistant", "content": "回声定位"}));
    // --system puts the message first in every conversation.
    let o = jielong(&["data", "chat", "--from", "chatterbot", "--system", "Be brief.", zh.to_str().unwrap(), "--out", "zh.jsonl"], d);
    assert_ok(&o);
    let first: serde_json::Value = serde_json::from_str(std::fs::read_to_string(d.join("zh.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(first["messages"][0], serde_json::json!({"role": "system", "content": "Be brief."}));
    // sft's reader takes the lines (the tiny spine model's context of 32 tokens leaves the
    // longer conversations unscored, which eval reports).
    spine(d);
    let o = jielong(&["eval", "--checkpoint", "run", "--chat", "cb.jsonl", "--json"], d);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert!(v["n_conversations"].as_u64().unwrap() >= 1 && v["assistant_loss"].as_f64().unwrap() > 0.0, "{v}");
    // Bad input: not a corpus, not YAML, nothing to convert.
    std::fs::write(d.join("x.yml"), "name: x\n").unwrap();
    assert_user_error(&jielong(&["data", "chat", "--from", "chatterbot", "x.yml", "--out", "x.jsonl"], d), "no `conversations` list");
    std::fs::write(d.join("y.yml"), "conversations:\n- - only a question\n").unwrap();
    assert_user_error(&jielong(&["data", "chat", "--from", "chatterbot", "y.yml", "--out", "y.jsonl"], d), "no conversation with a reply");
    assert!(!d.join("x.jsonl").exists() && !d.join("y.jsonl").exists());
}

#[test]
fn cli_data_chat_makes_the_handbook_instruction_set() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = jielong(&["data", "chat", "--from", "handbook", "--out", "hb.jsonl"], d);
    assert_ok(&o);
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(d.join("hb.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(rows.len() > 150, "{} conversations", rows.len());
    let qa = |q: &str| rows.iter().find(|r| r["messages"][0]["content"] == q).map(|r| r["messages"][1]["content"].as_str().unwrap().to_string());
    let lora = qa("What does the handbook say about LoRA?").or_else(|| qa("Explain LoRA briefly.")).or_else(|| qa("Tell me about LoRA.")).expect("a question about the LoRA section");
    assert!(lora.starts_with("Low-rank adaptation freezes a weight matrix") && lora.contains("often 8 or 16."), "{lora}");
    assert!(rows.iter().any(|r| r["messages"][0]["content"].as_str().unwrap().contains('“')), "Chinese questions too");
    // The same from the Markdown files on disk.
    let hb = repo_root().join("docs/handbook");
    let o = jielong(&["data", "chat", "--from", "handbook", hb.to_str().unwrap(), "--out", "disk.jsonl"], d);
    assert_ok(&o);
    assert_eq!(std::fs::read_to_string(d.join("disk.jsonl")).unwrap(), std::fs::read_to_string(d.join("hb.jsonl")).unwrap());
    assert_user_error(&jielong(&["data", "chat", "--from", "chatterbot", "--out", "x.jsonl"], d), "no input given");
}
