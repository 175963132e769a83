//! `jielong data clean` and `jielong data inspect` as a user runs them: a run with its report,
//! inspect showing kept and removed documents with their rules, `data prepare` reading the
//! kept shards as they are, and each bad input one line with status 2.

use crate::common::*;
use std::path::Path;

/// JSONL of made-up prose (syllable words and English stop words, no repeated phrases): 30
/// documents that pass the quality rules, 6 one-line notes, 4 exact copies.
fn write_docs(dir: &Path) -> String {
    let syl = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu"];
    let stop = ["the", "and", "of", "that", "with", "to", "have", "be"];
    let mut rng = jielong_core::rng::Rng::new(3);
    let word = |rng: &mut jielong_core::rng::Rng| {
        if rng.below(3) == 0 {
            stop[rng.below(8) as usize].to_string()
        } else {
            (0..3).map(|_| syl[rng.below(10) as usize]).collect::<String>()
        }
    };
    let mut lines = String::new();
    for i in 0..30 {
        let text: Vec<String> = (0..6).map(|_| (0..12).map(|_| word(&mut rng)).collect::<Vec<_>>().join(" ") + ".").collect();
        let text = text.join("\n");
        lines.push_str(&serde_json::json!({ "id": format!("doc{i}"), "text": text }).to_string());
        lines.push('\n');
        if i % 8 == 0 {
            lines.push_str(&serde_json::json!({ "text": text }).to_string());
            lines.push('\n');
        }
        if i % 5 == 0 {
            lines.push_str(&serde_json::json!({ "text": format!("A short note, number {i}.") }).to_string());
            lines.push('\n');
        }
    }
    let p = dir.join("docs.jsonl");
    std::fs::write(&p, lines).unwrap();
    p.to_str().unwrap().to_string()
}

/// The default pipeline, but keeping every language: made-up words have none.
const ANY_LANGUAGE: [&str; 4] = ["--set", "language.languages=[]", "--set", "language.min_score=0"];

#[test]
fn cli_data_clean_inspect_and_prepare() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let docs = write_docs(p);
    let mut args = vec!["data", "clean", "--set", "settings.shard_docs=16", "--out", "cleaned", &docs];
    args.extend(ANY_LANGUAGE);
    let o = jielong(&args, p);
    assert_ok(&o);
    let out = text(&o);
    assert!(out.contains("40 documents → 30 kept"), "{out}");
    assert!(out.contains("exact_duplicate 4"), "{out}");
    let report = std::fs::read_to_string(p.join("cleaned/report.md")).unwrap();
    assert!(report.contains("| exact_dedup | 34 | 30 | 4 (11.8%) |"), "{report}");

    let o = jielong(&["data", "inspect", "cleaned", "--n", "2"], p);
    assert_ok(&o);
    let shown = text(&o);
    assert!(shown.starts_with("30 kept, 10 removed"), "{shown}");
    assert!(shown.contains("── KEPT #") && shown.contains("── REMOVED #"), "{shown}");
    let o = jielong(&["data", "inspect", "cleaned", "--rule", "exact_duplicate"], p);
    assert_ok(&o);
    assert!(text(&o).starts_with("30 kept, 4 removed by exact_duplicate"), "{}", text(&o));

    // data prepare reads the kept shards only (not report.md, not removed/).
    assert_ok(&jielong(&["tokenizer", "train", "--kind", "char", "--out", "tok", "cleaned"], p));
    let o = jielong(&["data", "prepare", "--tokenizer", "tok", "--out", "shards", "cleaned"], p);
    assert_ok(&o);
    // 40 documents in shards of 16: three shard files.
    assert!(text(&o).contains("documents: 30 read from 3 files"), "{}", text(&o));
}

#[test]
fn cli_data_clean_bad_input_is_one_line_and_status_2() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let docs = write_docs(p);
    std::fs::write(p.join("bad.toml"), "[[stage]]\nkind = \"shiny\"\n").unwrap();
    assert_user_error(&jielong(&["data", "clean", "--pipeline", "bad.toml", "--out", "o", &docs], p), "unknown stage kind `shiny`");
    std::fs::write(p.join("range.toml"), "[[stage]]\nkind = \"fineweb\"\nline_punct_thr = 2.0\n").unwrap();
    assert_user_error(&jielong(&["data", "clean", "--pipeline", "range.toml", "--out", "o", &docs], p), "out of range");
    assert_user_error(&jielong(&["data", "clean", "--set", "gopher_quality.min_words=3", "--out", "o", &docs], p), "unknown field `min_words`");
    assert_user_error(&jielong(&["data", "clean", "--out", "o", "missing.jsonl"], p), "no such file");
    assert!(!p.join("o").exists(), "a refused run leaves no folder");
    assert_ok(&jielong(&["data", "clean", "--out", "o", &docs], p));
    assert_user_error(&jielong(&["data", "clean", "--out", "o", &docs], p), "--resume");
    assert_user_error(&jielong(&["data", "clean", "--resume", "--set", "gopher_quality.min_doc_words=10", "--out", "o", &docs], p), "different run");
    // --resume of a finished run reports it again without redoing anything.
    assert_ok(&jielong(&["data", "clean", "--resume", "--out", "o", &docs], p));
    assert_user_error(&jielong(&["data", "inspect", "nowhere"], p), "no such file");
}
