//! `jielong compare` end to end on the built-in handbook, with a budget of a few seconds.

use crate::common::*;

#[test]
fn compare_trains_every_family_and_writes_one_table() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "compare", "--budget", "5s", "--params", "40000", "--vocab-size", "320", "--context", "32", "--batch-size", "4", "--out", "cmp",
    ];
    let o = jielong(&args, tmp.path());
    assert_ok(&o);
    let out = text(&o);
    assert!(out.contains("| family | parameters |"), "{out}");
    let dir = tmp.path().join("cmp");
    for f in ["compare.md", "compare.json", "val_loss.svg"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let target = json["target_params"].as_f64().unwrap();
    assert_eq!(target, 40000.0);
    let rows = json["rows"].as_array().unwrap();
    let families: Vec<&str> = rows.iter().map(|r| r["family"].as_str().unwrap()).collect();
    assert_eq!(families, ["ngram", "rnn", "lstm", "gru", "gpt", "llama"]);
    let vocab = 320f64;
    for r in rows {
        let f = r["family"].as_str().unwrap();
        let (ppl, bpb, loss) = (r["perplexity"].as_f64().unwrap(), r["bits_per_byte"].as_f64().unwrap(), r["val_loss"].as_f64().unwrap());
        assert!(ppl.is_finite() && bpb.is_finite() && bpb > 0.0, "{f}: {r}");
        assert!((ppl - loss.exp()).abs() < 1e-6 * ppl, "{f}: perplexity is e^loss");
        // Every family beats guessing uniformly over the vocabulary... or is at least not far off it
        // after a second of training; none is worse than uniform by much.
        assert!(ppl > 1.0 && ppl < 2.0 * vocab, "{f}: perplexity {ppl}");
        assert!(r["tokens_per_s"].as_f64().unwrap() > 0.0 && r["train_s"].as_f64().unwrap() > 0.0, "{f}");
        if f != "ngram" {
            let p = r["params"].as_f64().unwrap();
            assert!((p / target - 1.0).abs() <= 0.25, "{f}: {p} parameters vs target {target}");
            assert!(r["steps"].as_u64().unwrap() >= 1, "{f}");
        }
    }
    // The n-gram model, counted on the same shards, is far better than uniform.
    assert!(rows[0]["perplexity"].as_f64().unwrap() < vocab / 2.0);
    let svg = std::fs::read_to_string(dir.join("val_loss.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 5, "one line per neural family");
    assert!(svg.contains("stroke-dasharray"), "the n-gram model is a flat line");
    let md = std::fs::read_to_string(dir.join("compare.md")).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), 7, "header + 6 rows");
    // A second run into the same folder is refused rather than mixed with the first.
    assert_user_error(&jielong(&args, tmp.path()), "already holds a comparison");
}

#[test]
fn compare_bad_input_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    assert_user_error(&jielong(&["compare", "--budget", "5x", "--out", "o"], p), "--budget 5x");
    assert_user_error(&jielong(&["compare", "--budget", "0s", "--out", "o"], p), "positive time");
    assert_user_error(&jielong(&["compare", "--budget", "5s", "--families", "gpt,transformer", "--out", "o"], p), "unknown family \"transformer\"");
    // A budget that leaves no step: refused before any family is trained.
    let o = jielong(&["compare", "--budget", "0.0001s", "--families", "lstm", "--params", "40000", "--vocab-size", "320", "--context", "32", "--out", "o"], p);
    assert_user_error(&o, "give at least --budget");
    assert!(!p.join("o/runs").exists(), "nothing was trained");
}

#[test]
fn compare_task_scores_each_attention_kind_by_source_length() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let args = ["compare", "--task", "reverse", "--budget", "4s", "--n", "400", "--min-len", "3", "--max-len", "6", "--out", "s2s"];
    let o = jielong(&args, p);
    assert_ok(&o);
    let dir = p.join("s2s");
    for f in ["compare.md", "compare.json", "exact_match.svg", "task/train.jsonl", "task/val.jsonl"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("compare.json")).unwrap()).unwrap();
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.iter().map(|r| r["attention"].as_str().unwrap()).collect::<Vec<_>>(), ["none", "additive"]);
    for r in results {
        let bins = r["by_source_length"].as_array().unwrap();
        let lens: Vec<u64> = bins.iter().map(|b| b[0].as_u64().unwrap()).collect();
        assert_eq!(lens, [3, 4, 5, 6], "one bin per source length");
        let n: u64 = bins.iter().map(|b| b[1].as_u64().unwrap()).sum();
        assert_eq!(n, 500, "every validation pair is in one bin");
        let em = r["exact_match"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&em) && r["steps"].as_u64().unwrap() >= 1);
    }
    let svg = std::fs::read_to_string(dir.join("exact_match.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert_user_error(&jielong(&["compare", "--task", "reverse", "--budget", "4s", "--attention", "none,luong", "--out", "x"], p), "unknown kind \"luong\"");
    assert_user_error(&jielong(&["compare", "--task", "sorting", "--budget", "4s", "--out", "x"], p), "sorting");
}

#[test]
fn quickstart_seq2seq_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let o = jielong(&["quickstart", "--family", "seq2seq", "--out", "q"], tmp.path());
    assert_user_error(&o, "jielong task make reverse");
    assert!(!tmp.path().join("q").exists(), "nothing was written");
}
