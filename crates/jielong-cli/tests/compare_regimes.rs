//! `jielong compare --regimes`: full, LoRA, prefix and prompt tuning of a tiny spine checkpoint on
//! a learnable chat task, each `jielong sft` in a child process for the same share of a budget of
//! a few seconds, scored on held-out conversations; and its bad input.

use crate::common::*;
use std::path::Path;

/// 60 conversations whose reply is a fixed frame around the user's word (learnable in a second).
fn write_chat(dir: &Path) {
    let words = ["step", "model", "words", "guess", "next", "one", "训练", "模型", "reads", "far", "so", "better"];
    let lines: Vec<String> = (0..60)
        .map(|i| {
            let w = words[i % words.len()];
            serde_json::json!({"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": format!("Yes, {w}.")}]}).to_string()
        })
        .collect();
    std::fs::write(dir.join("chat.jsonl"), lines.join("\n") + "\n").unwrap();
}

/// "· trainable N of M parameters" as `jielong sft` prints it.
fn sft_trainable(out: &str) -> (u64, u64) {
    let s = out.split("· trainable ").nth(1).unwrap_or_else(|| panic!("no trainable count in {out}"));
    let w: Vec<&str> = s.split_whitespace().collect();
    (w[0].parse().unwrap(), w[2].parse().unwrap())
}

#[test]
fn compare_regimes_tunes_each_regime_for_its_share_and_scores_the_held_out_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    spine(d);
    write_chat(d);
    let o = jielong(
        &["compare", "--regimes", "full,lora,prefix,prompt", "--checkpoint", "run", "--data", "chat.jsonl", "--budget", "8s", "--lora-rank", "2", "--num-virtual-tokens", "4", "--out", "cmp"],
        d,
    );
    assert_ok(&o);
    let out = text(&o);
    assert!(out.contains("54 conversations to train on, 6 held out"), "{out}");
    let dir = d.join("cmp");
    for f in ["compare.md", "compare.json", "train_loss.svg", "data/train.jsonl", "data/val.jsonl", "runs/full/sft.json", "runs/lora/adapter_config.json", "runs/prefix/adapter_config.json", "runs/prompt/adapter_config.json"] {
        assert!(dir.join(f).is_file(), "{f} missing: {out}");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["regime"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "full", "lora", "prefix", "prompt"]);
    let base_loss = rows[0]["val_loss_after"].as_f64().unwrap();
    assert!(base_loss > 1.0 && base_loss.is_finite(), "{}", rows[0]);
    for r in &rows[1..] {
        let name = r["regime"].as_str().unwrap();
        // The trainable count is the one `jielong sft` reports for the same regime and settings.
        let mut args = vec!["sft", "--checkpoint", "run", "--data", "chat.jsonl", "--regime", name, "--max-steps", "1", "--lora-rank", "2", "--lora-alpha", "4", "--num-virtual-tokens", "4"];
        let alone = format!("alone-{name}");
        args.extend(["--out", &alone]);
        let o = jielong(&args, d);
        assert_ok(&o);
        let (trainable, total) = sft_trainable(&text(&o));
        assert_eq!((r["trainable"].as_u64().unwrap(), r["total_params"].as_u64().unwrap()), (trainable, total), "{name}");
        let pct = r["trainable_pct"].as_f64().unwrap();
        if name == "full" {
            assert_eq!(pct, 100.0);
        } else {
            assert!(pct > 0.0 && pct < 100.0, "{name}: {pct}");
        }
        // Every regime trained for about its share (8 s / 4) and ran steps; memory was measured.
        let (secs, steps) = (r["train_s"].as_f64().unwrap(), r["steps"].as_u64().unwrap());
        assert!(secs > 0.5 && secs < 4.0 && steps >= 2, "{name}: {steps} steps in {secs} s");
        assert!(r["peak_rss_mib"].as_f64().unwrap() > 5.0 && r["tokens_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["val_loss_before"].as_f64().unwrap(), base_loss, "{name}: the base is every regime's before");
        assert!(dir.join("runs").join(name).join("metrics.jsonl").is_file());
    }
    // On this task, full fine-tuning and LoRA lower the held-out loss within their two seconds.
    for (i, name) in [(1, "full"), (2, "lora")] {
        let after = rows[i]["val_loss_after"].as_f64().unwrap();
        assert!(after < base_loss - 0.1, "{name}: held-out {base_loss} → {after}");
    }
    // The held-out score of a run is what `jielong eval --chat` reports for it.
    let o = jielong(&["eval", "--checkpoint", "run", "--adapter", "cmp/runs/lora", "--chat", "cmp/data/val.jsonl", "--template", "builtin", "--json"], d);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).trim()).unwrap();
    assert!((v["assistant_loss"].as_f64().unwrap() - rows[2]["val_loss_after"].as_f64().unwrap()).abs() < 1e-4, "{v}");
    let svg = std::fs::read_to_string(dir.join("train_loss.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 4, "one training curve per regime");
    let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 6, "header + base + 4 regimes");
    assert!(md.contains("ru_maxrss"), "the table says how memory is measured");
}

#[test]
fn compare_regimes_bad_input_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    spine(d);
    write_chat(d);
    let cmp = |extra: &[&str]| {
        let mut args = vec!["compare", "--budget", "4s", "--out", "o"];
        args.extend_from_slice(extra);
        jielong(&args, d)
    };
    assert_user_error(&cmp(&["--regimes", "full,qlora", "--checkpoint", "run", "--data", "chat.jsonl"]), "unknown regime \"qlora\"");
    assert_user_error(&cmp(&["--regimes", "full", "--families", "gpt", "--checkpoint", "run", "--data", "chat.jsonl"]), "--regimes and --families are exclusive");
    assert_user_error(&cmp(&["--regimes", "full,lora", "--checkpoint", "run"]), "--regimes needs --data");
    assert_user_error(&cmp(&["--regimes", "full", "--data", "chat.jsonl"]), "--regimes needs --checkpoint");
    assert_user_error(&cmp(&["--data", "chat.jsonl"]), "--data belongs to --regimes");
    assert_user_error(&cmp(&["--regimes", "lora", "--checkpoint", "run", "--data", "chat.jsonl", "--val-fraction", "1.5"]), "--val-fraction 1.5");
    assert_user_error(&cmp(&["--regimes", "lora", "--checkpoint", "run", "--data", "chat.jsonl", "--template", "chatml"]), "tokenizer lacks (<|im_end|>");
    assert_user_error(&cmp(&["--regimes", "lora", "--checkpoint", "run", "--data", "missing.jsonl"]), "missing.jsonl");
    assert!(!d.join("o/runs").exists(), "nothing was trained");
}
