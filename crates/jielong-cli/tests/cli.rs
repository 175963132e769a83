//! The spine through the real binary: tokenizer → shards → train → sample, and every kind of bad
//! input named in the spine issue giving one clear line and exit status 2.

use crate::common::*;

#[test]
fn cli_spine_end_to_end_and_resume() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    spine(dir);
    for f in ["run/config.toml", "run/tokenizer.json", "run/metrics.jsonl", "run/loss.svg", "run/ckpt-000006/model.safetensors", "run/ckpt-000006/optim.safetensors"] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    // Resuming a finished run with a longer schedule continues from step 6.
    let o = jielong(&["train", "--resume", "run", "--set", "train.max_steps=8"], dir);
    assert_ok(&o);
    assert!(text(&o).contains("from step 6"), "{}", text(&o));
    assert!(dir.join("run/ckpt-000008").exists());

    let o = jielong(&["sample", "--checkpoint", "run", "--prompt", "The model", "--max-tokens", "12", "--seed", "1"], dir);
    assert_ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("The model"));
    let again = jielong(&["sample", "--checkpoint", "run", "--prompt", "The model", "--max-tokens", "12", "--seed", "1"], dir);
    assert_eq!(o.stdout, again.stdout, "same seed must give the same sample");

    let o = jielong(&["tokenizer", "encode", "--tokenizer", "tok", "--json", "模型 reads"], dir);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ids: Vec<String> = v["ids"].as_array().unwrap().iter().map(|x| x.to_string()).collect();
    let o = jielong(&["tokenizer", "decode", "--tokenizer", "tok", &ids.join(",")], dir);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim_end(), "模型 reads");
    let o = jielong(&["tokenizer", "stats", "--tokenizer", "tok/tokenizer.json", "corpus"], dir);
    assert_ok(&o);
    assert!(text(&o).contains("most frequent"));
}

#[test]
fn cli_bad_input_gives_one_line_and_status_2() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    spine(dir);

    // Missing corpus.
    let o = jielong(&["tokenizer", "train", "--out", "t2", "nowhere.txt"], dir);
    assert_user_error(&o, "no such file");
    assert!(!dir.join("t2").exists());
    // A file that is not text.
    std::fs::write(dir.join("image.txt"), [0x89u8, b'P', b'N', b'G', 0, 0, 1, 2]).unwrap();
    let o = jielong(&["data", "prepare", "--tokenizer", "tok", "--out", "s2", "image.txt"], dir);
    assert_user_error(&o, "not a text file");
    assert!(!dir.join("s2").exists(), "no partial output");
    // An empty corpus.
    std::fs::write(dir.join("empty.txt"), "  \n").unwrap();
    let o = jielong(&["data", "prepare", "--tokenizer", "tok", "--out", "s3", "empty.txt"], dir);
    assert_user_error(&o, "corpus is empty");
    assert!(!dir.join("s3").exists());
    // A config with an unknown key, and one with an impossible value.
    std::fs::write(dir.join("typo.toml"), TINY_CONFIG.replace("n_layer", "n_layers")).unwrap();
    assert_user_error(&jielong(&["train", "--config", "typo.toml", "--out", "r2"], dir), "unknown field `n_layers`");
    let o = jielong(&["train", "--config", "tiny.toml", "--out", "r3", "--set", "model.n_head=3"], dir);
    assert_user_error(&o, "not divisible");
    assert!(!dir.join("r3").exists() || jielong_train_has_no_ckpt(&dir.join("r3")));
    // A tokenizer whose hash differs from the checkpoint's.
    let corpus = dir.join("corpus");
    assert_ok(&jielong(&["tokenizer", "train", "--kind", "char", "--vocab-size", "300", "--out", "tok2", corpus.to_str().unwrap()], dir));
    let o = jielong(&["sample", "--checkpoint", "run", "--prompt", "x", "--tokenizer", "tok2/tokenizer.json"], dir);
    assert_user_error(&o, "not the tokenizer this model was trained with");
    // A truncated shard and a foreign one.
    let shard = dir.join("shards/train-00000.bin");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 3]).unwrap();
    assert_user_error(&jielong(&["train", "--config", "tiny.toml", "--out", "r4"], dir), "truncated");
    std::fs::write(&shard, b"PK\x03\x04 this is a zip file, not a shard at all, padding padding padding").unwrap();
    assert_user_error(&jielong(&["train", "--config", "tiny.toml", "--out", "r5"], dir), "not a jielong token shard");
    // A missing checkpoint.
    assert_user_error(&jielong(&["sample", "--checkpoint", "nope", "--prompt", "x"], dir), "checkpoint not found");
    assert_user_error(&jielong(&["train", "--resume", "corpus"], dir), "not a run folder");
    // Bad flag values.
    assert_user_error(&jielong(&["sample", "--checkpoint", "run", "--prompt", "x", "--temperature", "-1"], dir), "--temperature");
    assert_user_error(&jielong(&["bench", "train", "--preset", "huge"], dir), "unknown preset");
    assert_user_error(&jielong(&["quickstart", "--minutes", "0"], dir), "--minutes");
    assert_eq!(jielong(&["tokenizer", "frobnicate"], dir).status.code(), Some(2), "clap usage errors exit 2 too");
}

#[test]
fn cli_tokenizer_train_refuses_empty_corpus_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("empty.txt"), "").unwrap();
    std::fs::write(dir.join("blank.txt"), "  \n\t\r\n\n").unwrap();
    for kind in ["bpe", "char", "wordpiece", "unigram"] {
        for file in ["empty.txt", "blank.txt"] {
            let o = jielong(&["tokenizer", "train", "--kind", kind, "--vocab-size", "300", "--out", "tok", file], dir);
            assert_user_error(&o, "corpus is empty");
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains(file) && err.contains("pass files with text"), "{kind} {file}: {err}");
            assert!(!dir.join("tok").exists(), "{kind} {file}: nothing may be written");
        }
    }
    // Several inputs, all without text: all are named.
    let o = jielong(&["tokenizer", "train", "--out", "tok", "empty.txt", "blank.txt"], dir);
    assert_user_error(&o, "empty.txt, blank.txt");
    assert!(!dir.join("tok").exists());
}

fn jielong_train_has_no_ckpt(run: &std::path::Path) -> bool {
    std::fs::read_dir(run).map(|d| d.filter_map(|e| e.ok()).all(|e| !e.file_name().to_string_lossy().starts_with("ckpt-"))).unwrap_or(true)
}
