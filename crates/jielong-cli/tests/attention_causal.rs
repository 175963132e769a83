//! `jielong attention` on GPT and Llama checkpoints: causal self-attention heat maps.

use crate::common::*;

#[test]
fn attention_draws_gpt_and_llama_self_attention_and_rejects_bad_layer_or_head() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    spine(p); // a 2-layer, 2-head GPT in run/
    let o = jielong(&["attention", "--checkpoint", "run", "--input", "模型读入前面的词 the next", "--out", "gpt.svg"], p);
    assert_ok(&o);
    assert!(text(&o).contains("layer 1"), "default: the last layer: {}", text(&o));
    let svg = std::fs::read_to_string(p.join("gpt.svg")).unwrap();
    let n = svg.matches("<title>").count();
    let t = (n as f64).sqrt() as usize;
    assert!(t > 2 && t * t == n, "a square map over the prompt's tokens ({n} cells)");
    assert!(svg.contains("Noto Sans CJK SC"));
    // Above the diagonal nothing is attended to: the (0, 1) cell's weight is 0.000.
    let cells: Vec<&str> = svg.split("<title>").skip(1).map(|c| c.split("</title>").next().unwrap()).collect();
    assert!(cells[1].ends_with(": 0.000"), "{}", cells[1]);
    assert!(cells[0].ends_with(": 1.000"), "the first token attends only to itself: {}", cells[0]);

    let o = jielong(&["attention", "--checkpoint", "run", "--input", "the next word", "--out", "all.svg", "--layer", "0", "--head", "all"], p);
    assert_ok(&o);
    let all = std::fs::read_to_string(p.join("all.svg")).unwrap();
    assert_eq!(all.matches("<svg").count(), 3, "one panel per head inside one root");

    assert_user_error(&jielong(&["attention", "--checkpoint", "run", "--input", "x y", "--out", "a.svg", "--layer", "2"], p), "--layer 2: the model has 2 layers");
    assert_user_error(&jielong(&["attention", "--checkpoint", "run", "--input", "x y", "--out", "a.svg", "--head", "2"], p), "--head 2");
    assert_user_error(&jielong(&["attention", "--checkpoint", "run", "--input", "x y", "--out", "a.svg", "--head", "x"], p), "--head x");
    assert!(!p.join("a.svg").exists());

    // Llama (grouped-query attention, rotary positions) through the same path.
    let cfg = repo_root().join("configs/llama-tiny.toml");
    let mut args = vec!["train", "--config", cfg.to_str().unwrap(), "--out", "llama"];
    args.extend(["--set", "data.dir=shards", "--set", "model.n_layer=2", "--set", "model.n_embd=32", "--set", "model.intermediate_size=0"]);
    args.extend(["--set", "model.max_seq_len=32", "--set", "train.max_steps=2", "--set", "train.eval_interval=2", "--set", "train.batch_size=4"]);
    let o = jielong(&args, p);
    assert_ok(&o);
    let o = jielong(&["attention", "--checkpoint", "llama", "--input", "训练让猜测更准确", "--out", "llama.svg", "--head", "1"], p);
    assert_ok(&o);
    assert!(std::fs::read_to_string(p.join("llama.svg")).unwrap().contains("llama · layer 1 · head 1"));
}
