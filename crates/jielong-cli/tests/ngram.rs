//! `jielong ngram` as a user runs it: train → eval → export ARPA → import → eval gives the same
//! figures; KenLM's own ARPA file scores as KenLM's `query` did; generation is reproducible;
//! and each bad input is one line with status 2 and no file left behind.

use crate::common::*;
use std::path::Path;

fn eval_json(model: &str, text: &str, extra: &[&str], cwd: &Path) -> serde_json::Value {
    let mut args = vec!["ngram", "eval", "--model", model, "--text", text, "--json"];
    args.extend(extra);
    let o = jielong(&args, cwd);
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn fixture(name: &str) -> String {
    repo_root().join("tests/fixtures/ngram").join(name).to_str().unwrap().to_string()
}

#[test]
fn cli_ngram_train_eval_export_import_agree() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let (train, test) = (fixture("train.txt"), fixture("test.txt"));
    let o = jielong(&["ngram", "train", "--order", "3", "--units", "words", "--out", "m.jlng", &train], p);
    assert_ok(&o);
    assert!(text(&o).contains("3-gram modified-kneser-ney model"), "{}", text(&o));
    let a = eval_json("m.jlng", &test, &[], p);
    assert_eq!(a["oovs"], 4);
    assert_ok(&jielong(&["ngram", "export", "--model", "m.jlng", "--out", "m.arpa"], p));
    assert!(std::fs::read_to_string(p.join("m.arpa")).unwrap().starts_with("\\data\\\nngram 1="));
    assert_ok(&jielong(&["ngram", "import", "--arpa", "m.arpa", "--units", "words", "--out", "back.jlng"], p));
    let b = eval_json("back.jlng", &test, &[], p);
    let c = eval_json("m.arpa", &test, &["--units", "words"], p);
    for key in ["log10_prob", "cross_entropy", "perplexity", "perplexity_without_oovs", "bits_per_byte"] {
        let x = a[key].as_f64().unwrap();
        for other in [&b, &c] {
            let y = other[key].as_f64().unwrap();
            assert!((x - y).abs() <= 1e-9 * x.abs(), "{key}: {x} vs {y}");
        }
    }
    assert_eq!((a["tokens"].clone(), a["sentences"].clone()), (b["tokens"].clone(), b["sentences"].clone()));

    // Other smoothings train and score too; MLE on unseen text is infinitely perplexed.
    for (smoothing, extra) in [("add-k", vec!["--k", "0.5"]), ("interpolated-add-k", vec![]), ("kneser-ney", vec!["--prune", "0,1"]), ("mle", vec![])] {
        let mut args = vec!["ngram", "train", "--order", "2", "--units", "words", "--smoothing", smoothing, "--out", "s.jlng", &train];
        args.extend(extra);
        assert_ok(&jielong(&args, p));
        let r = eval_json("s.jlng", &test, &[], p);
        let ppl = r["perplexity"].as_f64();
        if smoothing == "mle" {
            assert!(ppl.is_none(), "MLE perplexity should be infinite (null in JSON): {r}");
        } else {
            assert!(ppl.unwrap() > 1.0 && ppl.unwrap() < 200.0, "{smoothing}: {r}");
        }
    }

    // Generation: the same seed gives the same text; greedy continues the prompt.
    let gen = |seed: &str| jielong(&["ngram", "generate", "--model", "m.jlng", "--count", "2", "--seed", seed], p);
    let (g1, g2) = (gen("3"), gen("3"));
    assert_ok(&g1);
    assert_eq!(g1.stdout, g2.stdout);
    assert_eq!(String::from_utf8_lossy(&g1.stdout).lines().count(), 2);
    let o = jielong(&["ngram", "generate", "--model", "m.jlng", "--strategy", "greedy", "--prompt", "the dog"], p);
    assert_ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("the dog "), "{}", text(&o));
}

#[test]
fn cli_ngram_scores_kenlm_arpa_as_kenlm_query() {
    let d = tempfile::tempdir().unwrap();
    let r = eval_json(&fixture("kenlm-o4.arpa"), &fixture("test.txt"), &[], d.path());
    let q = std::fs::read_to_string(fixture("kenlm-o4.query")).unwrap();
    let field = |name: &str| -> f64 { q.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().parse().unwrap() };
    assert!((r["perplexity"].as_f64().unwrap() / field("Perplexity including OOVs:") - 1.0).abs() < 1e-6, "{r}");
    assert!((r["perplexity_without_oovs"].as_f64().unwrap() / field("Perplexity excluding OOVs:") - 1.0).abs() < 1e-6, "{r}");
    assert_eq!(r["tokens"].as_f64().unwrap(), field("Tokens:"));
}

#[test]
fn cli_ngram_bad_input_is_one_line_exit_2_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let train = fixture("train.txt");
    std::fs::write(p.join("empty.txt"), "\n\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--order", "0"], "--order 0 is out of range"),
        (vec!["--order", "7"], "--order 7 is out of range"),
        (vec!["--smoothing", "add-k", "--k", "0"], "k must be positive"),
        (vec!["--smoothing", "add-k", "--k", "-1"], "k must be positive"),
        (vec!["--smoothing", "kneser-ney", "--k", "1"], "--k applies to add-k"),
        (vec!["--smoothing", "witten-bell"], "--smoothing witten-bell is not known"),
        (vec!["--units", "tokens"], "--units tokens needs --tokenizer"),
        (vec!["--prune", "1,0"], "non-decreasing"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["ngram", "train", "--out", "bad.jlng"];
        args.extend(extra);
        args.push(&train);
        assert_user_error(&jielong(&args, p), needle);
        assert!(!p.join("bad.jlng").exists());
    }
    assert_user_error(&jielong(&["ngram", "train", "--out", "bad.jlng", "empty.txt"], p), "the corpus is empty");
    assert!(!p.join("bad.jlng").exists());

    let good = std::fs::read_to_string(fixture("kenlm-o2.arpa")).unwrap();
    let arpas = [
        (good.replacen("ngram 2=", "ngram 2=1", 1), "but the \\2-grams: section has"),
        (good.split("\\2-grams:").next().unwrap().to_string() + "\\end\\\n", "missing the \\2-grams: section"),
        (good.replacen("-2.", "x2.", 1), "is not a number"),
    ];
    for (text, needle) in arpas {
        std::fs::write(p.join("bad.arpa"), text).unwrap();
        assert_user_error(&jielong(&["ngram", "import", "--arpa", "bad.arpa", "--units", "space", "--out", "bad.jlng"], p), needle);
        assert!(!p.join("bad.jlng").exists());
        assert_user_error(&jielong(&["ngram", "eval", "--model", "bad.arpa", "--text", &fixture("test.txt")], p), needle);
    }

    assert_ok(&jielong(&["ngram", "train", "--order", "2", "--units", "space", "--out", "m.jlng", &train], p));
    let mut bytes = std::fs::read(p.join("m.jlng")).unwrap();
    bytes[8] = 9;
    std::fs::write(p.join("old.jlng"), &bytes).unwrap();
    assert_user_error(&jielong(&["ngram", "eval", "--model", "old.jlng", "--text", &train], p), "format version 9");
    assert_user_error(&jielong(&["ngram", "export", "--model", "old.jlng", "--out", "old.arpa"], p), "format version 9");
    assert!(!p.join("old.arpa").exists());
}

#[test]
fn cli_ngram_over_tokens_runs_through_the_shared_engine() {
    // A token-level n-gram model is a causal LM: `jielong eval` and `jielong generate`
    // (greedy, sampled, beam) take it as --checkpoint, on the same ids as a neural model.
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let (train, test) = (fixture("train.txt"), fixture("test.txt"));
    assert_ok(&jielong(&["tokenizer", "train", "--kind", "bpe", "--vocab-size", "300", "--out", "tok", &train], p));
    assert_ok(&jielong(&["ngram", "train", "--order", "3", "--units", "tokens", "--tokenizer", "tok", "--sentences", "document", "--out", "tk.jlng", &train], p));
    let o = jielong(&["eval", "--checkpoint", "tk.jlng", "--text", &test, "--json"], p);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ce = v["cross_entropy"].as_f64().unwrap();
    assert!(ce > 0.5 && ce < (300f64).ln(), "{v}");
    for strategy in ["greedy", "sample", "beam"] {
        let o = jielong(&["generate", "--checkpoint", "tk.jlng", "--prompt", "the cat", "--strategy", strategy, "--max-tokens", "8", "--seed", "1"], p);
        assert_ok(&o);
        assert!(String::from_utf8_lossy(&o.stdout).contains("the cat"), "{strategy}: {}", text(&o));
    }
    assert_ok(&jielong(&["ngram", "train", "--order", "2", "--units", "words", "--out", "w.jlng", &train], p));
    assert_user_error(&jielong(&["eval", "--checkpoint", "w.jlng", "--text", &test], p), "only a model trained with --units tokens");
}
