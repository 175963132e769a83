//! Parity with independent implementations: scikit-learn's CountVectorizer / TfidfVectorizer
//! and the Lucene BM25 formula in plain Python, on our own English and Chinese sentences
//! (fixtures/parity_corpus.jsonl). fixtures/gen_parity.py wrote fixtures/lexical_parity.json and
//! records the versions it used.

use jielong_lexical::analyze::term_texts;
use jielong_lexical::{read_docs, LexicalIndex, Params, Scheme, Split, TfMode};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("lexical_parity.json")).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn parity_analysis_matches_python_jieba_and_words() {
    let f = fixture();
    let docs = read_docs(&[fixtures().join("parity_corpus.jsonl")], Split::Files).unwrap();
    assert_eq!(docs.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), strings(&f["ids"]));
    for (d, want) in docs.iter().zip(f["tokens"].as_array().unwrap()) {
        assert_eq!(term_texts(&d.text), strings(want), "{}", d.id);
    }
    for q in f["queries"].as_array().unwrap() {
        assert_eq!(term_texts(q["text"].as_str().unwrap()), strings(&q["tokens"]));
    }
}

#[test]
fn parity_scores_match_scikit_learn_and_lucene_bm25() {
    let f = fixture();
    let docs = read_docs(&[fixtures().join("parity_corpus.jsonl")], Split::Files).unwrap();
    let n = docs.len();
    let dir = tempfile::tempdir().unwrap();
    let configs = [
        ("bow", Params::new(Scheme::Bow, None, None, None).unwrap()),
        ("tfidf_raw", Params::new(Scheme::Tfidf, Some(TfMode::Raw), None, None).unwrap()),
        ("tfidf_log", Params::new(Scheme::Tfidf, Some(TfMode::Log), None, None).unwrap()),
        ("tfidf_augmented", Params::new(Scheme::Tfidf, Some(TfMode::Augmented), None, None).unwrap()),
        ("bm25", Params::new(Scheme::Bm25, None, None, None).unwrap()),
        ("bm25_k1_2_b_0.3", Params::new(Scheme::Bm25, None, Some(2.0), Some(0.3)).unwrap()),
    ];
    let mut compared = 0;
    for (key, params) in configs {
        let out = dir.path().join(key);
        LexicalIndex::build(docs.clone(), params, &out).unwrap();
        let index = LexicalIndex::open(&out).unwrap();
        for q in f["queries"].as_array().unwrap() {
            let text = q["text"].as_str().unwrap();
            let mut got = vec![0.0; n];
            for (d, s) in index.scores(text).unwrap() {
                got[d] = s;
            }
            let want: Vec<f64> = q[key].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{key} {text:?} doc {i}: {g} vs reference {w}");
                compared += 1;
            }
            // The ranking agrees too (k = all documents with a positive score).
            let hits = index.search(text, n).unwrap();
            assert_eq!(hits.len(), want.iter().filter(|&&w| w > 1e-12).count(), "{key} {text:?}");
        }
    }
    assert_eq!(compared, 6 * 9 * n);
}
