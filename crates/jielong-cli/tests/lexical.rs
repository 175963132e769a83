//! `jielong lexical index` → `search` as a user runs them: text and JSON output, a Chinese
//! query, a query with no known word, and bad input.

use crate::common::*;

/// Our own documents: a folder of text files (one split into paragraphs) and a JSONL file.
fn write_docs(dir: &std::path::Path) -> std::path::PathBuf {
    let d = dir.join("docs");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("notes.txt"),
        "The river runs past the old mill.\nIn spring the river floods the fields.\n\nThe garden is quiet in the morning.\n",
    )
    .unwrap();
    std::fs::write(
        d.join("more.jsonl"),
        concat!(
            "{\"id\": \"zh-1\", \"title\": \"语言模型\", \"text\": \"语言模型读入前面的词，猜下一个词。\"}\n",
            "{\"id\": \"zh-2\", \"text\": \"猫睡在花园墙上温暖的石头上。\"}\n",
            "{\"id\": \"en-3\", \"text\": \"A cat sleeps on the garden wall.\"}\n",
        ),
    )
    .unwrap();
    d
}

#[test]
fn lexical_index_then_search_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let o = jielong(&["lexical", "index", "--scheme", "bm25", "--split", "paragraphs", "--out", "idx", docs.to_str().unwrap()], dir.path());
    assert_ok(&o);
    assert!(text(&o).contains("indexed 5 documents"), "{}", text(&o));
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("idx/meta.json")).unwrap()).unwrap();
    assert_eq!((meta["scheme"].as_str(), meta["version"].as_u64(), meta["k1"].as_f64()), (Some("bm25"), Some(1), Some(1.2)));

    let o = jielong(&["lexical", "search", "--index", "idx", "river mill"], dir.path());
    assert_ok(&o);
    let out = text(&o);
    let first = out.lines().nth(1).unwrap();
    assert!(first.starts_with(" 1.") && first.contains("notes.txt#1"), "{out}");
    assert!(out.contains("The «river» runs past the old «mill». In spring the «river»"), "{out}");

    // Chinese query, JSON output with byte spans into the snippet.
    let o = jielong(&["lexical", "search", "--index", "idx", "--json", "--k", "3", "语言模型"], dir.path());
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let hits = v["results"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{v}");
    assert_eq!((hits[0]["doc_id"].as_str(), hits[0]["title"].as_str()), (Some("zh-1"), Some("语言模型")));
    let snippet = hits[0]["snippet"].as_str().unwrap();
    let spans: Vec<(usize, usize)> = serde_json::from_value(hits[0]["spans"].clone()).unwrap();
    let marked: Vec<&str> = spans.iter().map(|&(s, e)| &snippet[s..e]).collect();
    assert_eq!(marked, ["语言", "模型"]);
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0);

    // --k bounds the results; a TF-IDF index of the same documents ranks the cat documents.
    let o = jielong(&["lexical", "index", "--scheme", "tfidf", "--tf", "log", "--out", "tfidf", docs.to_str().unwrap()], dir.path());
    assert_ok(&o);
    let o = jielong(&["lexical", "search", "--index", "tfidf", "--json", "--k", "1", "garden cat 猫"], dir.path());
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    assert_eq!(v["params"]["tf"].as_str(), Some("log"));
}

#[test]
fn lexical_query_without_known_words_is_an_explained_empty_result() {
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    assert_ok(&jielong(&["lexical", "index", "--scheme", "bow", "--out", "idx", docs.to_str().unwrap()], dir.path()));
    let o = jielong(&["lexical", "search", "--index", "idx", "zebra 斑马"], dir.path());
    assert_ok(&o);
    let out = text(&o);
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.contains("no results") && out.contains("zebra, 斑马"), "{out}");
    let o = jielong(&["lexical", "search", "--index", "idx", "--json", "zebra"], dir.path());
    assert_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 0);
    assert!(v["note"].as_str().unwrap().contains("zebra"), "{v}");
}

#[test]
fn lexical_bad_input_is_one_line_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let docs = write_docs(dir.path());
    let d = docs.to_str().unwrap();
    assert_user_error(&jielong(&["lexical", "search", "--index", "nope", "river"], dir.path()), "no lexical index");
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::write(dir.path().join("empty/blank.txt"), "  \n\n").unwrap();
    assert_user_error(&jielong(&["lexical", "index", "--split", "paragraphs", "--out", "idx", "empty"], dir.path()), "no documents");
    std::fs::write(dir.path().join("punct.txt"), "…!!! ??").unwrap();
    assert_user_error(&jielong(&["lexical", "index", "--out", "idx", "punct.txt"], dir.path()), "no words");
    assert!(!dir.path().join("idx").exists(), "nothing half-written");
    assert_user_error(&jielong(&["lexical", "index", "--k1", "-0.5", "--out", "idx", d], dir.path()), "--k1 -0.5");
    assert_user_error(&jielong(&["lexical", "index", "--b", "2", "--out", "idx", d], dir.path()), "--b 2");
    assert_user_error(&jielong(&["lexical", "index", "--scheme", "tfidf", "--k1", "1", "--out", "idx", d], dir.path()), "bm25 only");
    assert_user_error(&jielong(&["lexical", "index", "--scheme", "bm99", "--out", "idx", d], dir.path()), "bm99");
    assert_user_error(&jielong(&["lexical", "index", "--out", "idx", "missing.txt"], dir.path()), "missing.txt");
    assert!(!dir.path().join("idx").exists());
    // An index of another format version.
    assert_ok(&jielong(&["lexical", "index", "--out", "idx", d], dir.path()));
    let meta = dir.path().join("idx/meta.json");
    std::fs::write(&meta, std::fs::read_to_string(&meta).unwrap().replace("\"version\": 1", "\"version\": 2")).unwrap();
    assert_user_error(&jielong(&["lexical", "search", "--index", "idx", "river"], dir.path()), "version 2");
    assert_user_error(&jielong(&["lexical", "search", "--index", "idx", "--k", "0", "river"], dir.path()), "--k 0");
    // A folder that is not an index is not overwritten.
    assert_user_error(&jielong(&["lexical", "index", "--out", "docs", d], dir.path()), "not a lexical index");
    assert!(docs.join("notes.txt").exists());
}
