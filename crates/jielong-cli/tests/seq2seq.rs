//! The seq2seq family through the real binary: task make → train → eval --pairs (greedy and
//! beam) → attention heat map, and the bad inputs around them (one-line errors, exit 2).

use crate::common::*;
use std::path::Path;

const CONFIG: &str = r#"
[data]
dir = "rev"

[model]
family = "seq2seq"
cell = "gru"
hidden_size = 24
n_embd = 16
bidirectional = true
attention = "additive"
max_seq_len = 16

[train]
objective = "seq2seq"
batch_size = 16
max_steps = 20
learning_rate = 1e-2
warmup_steps = 2
eval_interval = 10
checkpoint_interval = 10
"#;

fn setup(dir: &Path) {
    std::fs::create_dir_all(dir.join("rev")).unwrap();
    assert_ok(&jielong(&["task", "make", "reverse", "--n", "300", "--out", "rev/train.jsonl", "--min-len", "3", "--max-len", "6"], dir));
    assert_ok(&jielong(&["task", "make", "reverse", "--n", "20", "--seed", "1", "--out", "rev/val.jsonl", "--min-len", "3", "--max-len", "6"], dir));
    std::fs::write(dir.join("s2s.toml"), CONFIG).unwrap();
}

#[test]
fn seq2seq_cli_trains_evaluates_and_draws_attention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let o = jielong(&["train", "--config", "s2s.toml", "--out", "runs/rev"], dir);
    assert_ok(&o);
    assert!(text(&o).contains("seq2seq · bidirectional GRU"), "{}", text(&o));
    let o = jielong(&["eval", "--checkpoint", "runs/rev", "--pairs", "rev/val.jsonl", "--json"], dir);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["n"], 20);
    for key in ["exact_match", "token_accuracy"] {
        let x = v[key].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    assert!((0.0..=100.0).contains(&v["bleu"].as_f64().unwrap()));
    assert!(v["cross_entropy"].as_f64().unwrap().is_finite());
    let o = jielong(&["eval", "--checkpoint", "runs/rev", "--pairs", "rev/val.jsonl", "--beams", "3", "--show", "2"], dir);
    assert_ok(&o);
    assert!(text(&o).contains("beam search, 3 beams") && text(&o).contains("BLEU"), "{}", text(&o));
    let o = jielong(&["attention", "--checkpoint", "runs/rev", "--input", "abc<&", "--out", "map.svg"], dir);
    assert_ok(&o);
    let svg = std::fs::read_to_string(dir.join("map.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("&lt;") && svg.contains("&amp;") && !svg.contains(">&<"), "labels are escaped");
    // A given target: rows = its tokens + the end token, columns = the source's.
    let o = jielong(&["attention", "--checkpoint", "runs/rev", "--input", "abc", "--target", "cba", "--out", "t.svg"], dir);
    assert_ok(&o);
    let svg = std::fs::read_to_string(dir.join("t.svg")).unwrap();
    assert_eq!(svg.matches("<title>").count(), 4 * 3);
}

#[test]
fn seq2seq_cli_bad_input_is_one_line_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let o = jielong(&["train", "--config", "s2s.toml", "--set", "model.attention=luong", "--out", "runs/x"], dir);
    assert_user_error(&o, "luong");
    let o = jielong(&["train", "--config", "s2s.toml", "--set", "model.hidden_size=0", "--out", "runs/x"], dir);
    assert_user_error(&o, "model.hidden_size");
    let o = jielong(&["train", "--config", "s2s.toml", "--set", "model.family=seq2sq", "--out", "runs/x"], dir);
    assert_user_error(&o, "not a family jielong knows");
    std::fs::write(dir.join("rev/train.jsonl"), "{\"source\": \"abc\", \"target\": \"cba\"}\n{\"target\": \"x\"}\n").unwrap();
    let o = jielong(&["train", "--config", "s2s.toml", "--out", "runs/x"], dir);
    assert_user_error(&o, "line 2: no \"source\" field");
    assert!(!dir.join("runs/x").exists(), "nothing written on bad input");
    // A model trained with attention = "none" has no weights to draw.
    setup(dir);
    assert_ok(&jielong(&["train", "--config", "s2s.toml", "--set", "model.attention=none", "--set", "train.max_steps=2", "--out", "runs/none"], dir));
    let o = jielong(&["attention", "--checkpoint", "runs/none", "--input", "abc", "--out", "m.svg"], dir);
    assert_user_error(&o, "attention = \"none\"");
    assert!(!dir.join("m.svg").exists());
    let o = jielong(&["attention", "--checkpoint", "runs/none", "--input", "abc", "--out", "m.png"], dir);
    assert_user_error(&o, "*.svg");
    let o = jielong(&["eval", "--checkpoint", "runs/none", "--pairs", "nope.jsonl"], dir);
    assert_user_error(&o, "nope.jsonl");
    let o = jielong(&["eval", "--checkpoint", "runs/none", "--pairs", "rev/val.jsonl", "--beams", "0"], dir);
    assert_user_error(&o, "--beams 0");
    let o = jielong(&["eval", "--checkpoint", "runs/none", "--text", "rev/val.jsonl"], dir);
    assert_user_error(&o, "--pairs");
    let o = jielong(&["generate", "--checkpoint", "runs/none", "--prompt", "abc"], dir);
    assert_user_error(&o, "seq2seq");
}
