//! `jielong sft` through the binary: a full run and a LoRA run on a tiny spine checkpoint, the
//! template found by chat and generate --chat without flags, adapters applied with --adapter,
//! and bad input as one-line errors with status 2.

mod common;
use common::*;
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
    assert_user_error(&o, "is a LoRA adapter");
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
