//! Helpers for running the real `jielong` binary in tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn jielong(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jielong")).args(args).current_dir(cwd).output().expect("run jielong")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Assert a clean user error: exit 2, one line on stderr containing `needle`, no panic.
pub fn assert_user_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, got {:?}: {}", o.status.code(), text(o));
    assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "error should be one line: {err}");
}

pub fn assert_ok(o: &Output) {
    assert!(o.status.success(), "jielong failed: {}", text(o));
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A small corpus of our own text, written to `dir/corpus`.
pub fn write_corpus(dir: &Path) -> PathBuf {
    let c = dir.join("corpus");
    std::fs::create_dir_all(&c).unwrap();
    let en: String = (0..150)
        .map(|i| format!("Step {i}: the model reads the words so far and guesses the next one. Training makes the guess better.\n"))
        .collect();
    let zh: String = (0..150).map(|i| format!("第{i}步：模型读入前面的词，猜下一个词。训练让猜测更准确。\n")).collect();
    std::fs::write(c.join("en.txt"), en).unwrap();
    std::fs::write(c.join("zh.md"), zh).unwrap();
    c
}

pub const TINY_CONFIG: &str = r#"
[data]
dir = "shards"

[model]
n_layer = 2
n_head = 2
n_embd = 32
max_seq_len = 32

[train]
batch_size = 4
max_steps = 6
warmup_steps = 2
eval_interval = 3
eval_windows = 8
checkpoint_interval = 3
"#;

/// Tokenizer → shards → a 6-step run in `dir/run` (tokenizer in `dir/tok`).
pub fn spine(dir: &Path) {
    spine_with(dir, &[]);
}

/// As `spine`, with `--set` overrides for the training run.
pub fn spine_with(dir: &Path, set: &[&str]) {
    let corpus = write_corpus(dir);
    let c = corpus.to_str().unwrap();
    let o = jielong(&["tokenizer", "train", "--kind", "bpe", "--vocab-size", "400", "--out", "tok", c], dir);
    assert_ok(&o);
    assert!(text(&o).contains("characters/token"), "{}", text(&o));
    let o = jielong(&["data", "prepare", "--tokenizer", "tok/tokenizer.json", "--out", "shards", c], dir);
    assert_ok(&o);
    assert!(text(&o).contains("2 kept"), "{}", text(&o));
    std::fs::write(dir.join("tiny.toml"), TINY_CONFIG).unwrap();
    let mut args = vec!["train", "--config", "tiny.toml", "--out", "run"];
    for s in set {
        args.extend(["--set", s]);
    }
    let o = jielong(&args, dir);
    assert_ok(&o);
    assert!(text(&o).contains("unigram baseline"), "{}", text(&o));
}
