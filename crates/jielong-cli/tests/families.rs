//! The family-generic commands as a user runs them: a Llama trained from a config, generated
//! from, evaluated, exported to a Hugging Face folder and imported back (the same model: equal
//! cross-entropy), `train --init-from` on the import; and the bad inputs of families, import
//! and export, each one line with status 2 and no folder left behind.

use crate::common::*;

fn eval_ce(run: &str, text: &str, cwd: &std::path::Path) -> f64 {
    let o = jielong(&["eval", "--checkpoint", run, "--text", text, "--json"], cwd);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["cross_entropy"].as_f64().unwrap()
}

#[test]
fn cli_llama_trains_exports_imports_and_continues() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let corpus = write_corpus(p);
    let c = corpus.to_str().unwrap();
    assert_ok(&jielong(&["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--out", "tok", c], p));
    assert_ok(&jielong(&["data", "prepare", "--tokenizer", "tok", "--out", "shards", c], p));
    let cfg = repo_root().join("configs/llama-tiny.toml");
    let cfg = cfg.to_str().unwrap();
    let small = ["--set", "data.dir=shards", "--set", "model.n_layer=2", "--set", "model.n_embd=64", "--set", "model.intermediate_size=0", "--set", "model.max_seq_len=32", "--set", "train.max_steps=6", "--set", "train.eval_interval=3", "--set", "train.batch_size=4"];
    let mut args = vec!["train", "--config", cfg, "--out", "llama"];
    args.extend(small);
    let o = jielong(&args, p);
    assert_ok(&o);
    assert!(text(&o).contains("Llama · 2 layers · 4 heads (2 key/value)"), "{}", text(&o));
    assert_ok(&jielong(&["generate", "--checkpoint", "llama", "--prompt", "the model", "--max-tokens", "8", "--strategy", "beam"], p));

    // Export, import the export: the same model.
    assert_ok(&jielong(&["export", "--checkpoint", "llama", "--format", "hf", "--out", "hf"], p));
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        assert!(p.join("hf").join(f).is_file(), "export lacks {f}");
    }
    assert_ok(&jielong(&["import", "--from", "hf", "--out", "back"], p));
    let en = corpus.join("en.txt");
    let en = en.to_str().unwrap();
    assert_eq!(eval_ce("llama", en, p), eval_ce("back", en, p), "the imported export is another model");

    // Continue training the import.
    let mut args = vec!["train", "--config", cfg, "--out", "more", "--init-from", "back"];
    args.extend(small);
    assert_ok(&jielong(&args, p));
    assert!(eval_ce("more", en, p) < eval_ce("back", en, p), "training on from the import did not lower the loss");

    // Bad input: one line, status 2, nothing written.
    assert_user_error(&jielong(&["export", "--checkpoint", "llama", "--format", "hf", "--out", "hf"], p), "already exists");
    assert_user_error(&jielong(&["import", "--from", "hf", "--out", "back"], p), "already exists");
    assert_user_error(&jielong(&["import", "--from", "llama", "--out", "x"], p), "no config.json");
    assert!(!p.join("x").exists());
    let fixture = repo_root().join("tests/fixtures/llama-tiny");
    assert_user_error(&jielong(&["import", "--from", fixture.to_str().unwrap(), "--out", "y"], p), "no tokenizer.json");
    assert!(!p.join("y").exists());
    // A tokenizer with more ids (300) than the fixture's embedding table (96).
    assert_user_error(&jielong(&["import", "--from", fixture.to_str().unwrap(), "--out", "z", "--tokenizer", "tok/tokenizer.json"], p), "embedding table has 96 rows");
    assert!(!p.join("z").exists());
    let mut cfg_json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("hf/config.json")).unwrap()).unwrap();
    cfg_json["hidden_act"] = "gelu".into();
    std::fs::write(p.join("hf/config.json"), cfg_json.to_string()).unwrap();
    assert_user_error(&jielong(&["import", "--from", "hf", "--out", "w"], p), "`hidden_act`");
    assert!(!p.join("w").exists());
    for (set, needle) in [("model.family=mamba", "not a family jielong knows"), ("model.n_kv_head=3", "must divide model.n_head"), ("model.pos_encoding=rope", "setting of family gpt")] {
        let o = jielong(&["train", "--config", cfg, "--set", "data.dir=shards", "--set", set, "--out", "bad"], p);
        assert_user_error(&o, needle);
        assert!(!p.join("bad").join("ckpt-000001").exists());
    }
}
