//! Scores on a three-document corpus, computed by hand (the arithmetic is in the comments), and
//! the bad input an index must refuse.

use jielong_lexical::{Doc, LexicalIndex, Params, Scheme, TfMode};

fn docs(texts: &[&str]) -> Vec<Doc> {
    texts.iter().enumerate().map(|(i, t)| Doc { id: format!("d{i}"), title: None, text: t.to_string() }).collect()
}

/// d0 "The cat sat." (3 words), d1 "The cat ate the fish." (5), d2 "A dog!" (2). Query "cat fish".
const CORPUS: [&str; 3] = ["The cat sat.", "The cat ate the fish.", "A dog!"];

fn scores(scheme: Scheme, tf: Option<TfMode>, query: &str) -> Vec<(String, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    LexicalIndex::build(docs(&CORPUS), Params::new(scheme, tf, None, None).unwrap(), &out).unwrap();
    let index = LexicalIndex::open(&out).unwrap();
    index.search(query, 10).unwrap().into_iter().map(|h| (h.doc_id, h.score)).collect()
}

fn assert_scores(got: &[(String, f64)], want: &[(&str, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((gid, g), (wid, w)) in got.iter().zip(want) {
        assert_eq!(gid, wid, "{got:?}");
        assert!((g - w).abs() < 1e-9, "{gid}: {g} vs hand {w}");
    }
}

#[test]
fn bm25_matches_hand_computation() {
    // N = 3, |d0| = 3, |d1| = 5, |d2| = 2, avgdl = 10/3; k1 = 1.2, b = 0.75.
    // idf(cat)  = ln(1 + (3 − 2 + 0.5)/(2 + 0.5)) = ln(1.6)      = 0.470003629245736
    // idf(fish) = ln(1 + (3 − 1 + 0.5)/(1 + 0.5)) = ln(2.666…)   = 0.980829253011726
    // d0: K = 1.2·(0.25 + 0.75·3/(10/3)) = 1.2·0.925 = 1.11;  cat tf 1: 2.2/(1 + 1.11) = 1.042654…
    //     score = 0.470003629 · 1.042654028 = 0.490051177412615
    // d1: K = 1.2·(0.25 + 0.75·5/(10/3)) = 1.2·1.375 = 1.65;  cat, fish tf 1: 2.2/2.65 = 0.830188…
    //     score = (0.470003629 + 0.980829253) · 0.830188679 = 1.204465034326950
    // d2 holds neither word: not returned.
    let got = scores(Scheme::Bm25, None, "cat fish");
    assert_scores(&got, &[("d1", 1.204465034327), ("d0", 0.4900511774126)]);
}

#[test]
fn bm25_uses_k1_and_b() {
    // b = 0: no length normalisation, K = k1 = 2 for every document.
    // d0: idf(cat)·tf(k1+1)/(tf+k1) = 0.470003629·3/3 = 0.470003629245736
    // d1: (0.470003629 + 0.980829253)·3/3 = 1.450832882257462
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    LexicalIndex::build(docs(&CORPUS), Params::new(Scheme::Bm25, None, Some(2.0), Some(0.0)).unwrap(), &out).unwrap();
    let got: Vec<_> = LexicalIndex::open(&out).unwrap().search("cat fish", 10).unwrap().into_iter().map(|h| (h.doc_id, h.score)).collect();
    assert_scores(&got, &[("d1", 1.4508328822575), ("d0", 0.4700036292457)]);
}

#[test]
fn tfidf_matches_hand_computation() {
    // Smooth idf = ln((1 + 3)/(1 + df)) + 1: df 2 (the, cat) → ln(4/3) + 1 = 1.287682072451781,
    // df 1 (sat, ate, fish, a, dog) → ln 2 + 1 = 1.693147180559945.
    // d0 = (the 1.287682, cat 1.287682, sat 1.693147), |d0| = √(2·1.658125 + 2.866747) = 2.486563415
    // d1 = (the 2·1.287682, cat 1.287682, ate 1.693147, fish 1.693147), |d1| = √14.024119 = 3.744879217
    // q  = (cat 1.287682, fish 1.693147), |q| = √4.524872 = 2.127174768
    // cos(q, d0) = 1.287682² / (2.127175 · 2.486563) = 1.658125 / 5.289356 = 0.313483427335834
    // cos(q, d1) = (1.287682² + 1.693147²) / (2.127175 · 3.744879) = 4.524872 / 7.966010 = 0.568022263230075
    let got = scores(Scheme::Tfidf, Some(TfMode::Raw), "cat fish");
    assert_scores(&got, &[("d1", 0.5680222632301), ("d0", 0.3134834273358)]);
}

#[test]
fn tfidf_log_and_augmented_tf_change_repeated_words() {
    // log tf: d1's "the" (tf 2) weighs 1 + ln 2 = 1.693147 instead of 2; only "the" changes.
    // d1 = (the 1.693147·1.287682 = 2.180232, cat 1.287682, ate 1.693147, fish 1.693147)
    // |d1|² = 4.753426 + 1.658125 + 2·2.866747 = 12.145045, |d1| = 3.484974
    // cos(q, d1) = 4.524872 / (2.127175 · 3.484974) = 4.524872 / 7.413150 = 0.610385 (d0 unchanged)
    let got = scores(Scheme::Tfidf, Some(TfMode::Log), "cat fish");
    assert_scores(&got[1..], &[("d0", 0.3134834273358)]);
    assert!((got[0].1 - 0.610385).abs() < 1e-6, "{got:?}");
    // augmented: 0.5 + 0.5·tf/max tf; in d1 max tf = 2 ("the"), so the → 1, the others 0.75.
    // d1 = (the 1.287682, cat 0.965762, ate 1.269860, fish 1.269860), |d1|² = 1.658125 + 0.932696 +
    // 2·1.612545 = 5.815911, |d1| = 2.411620. In d0 and in q every tf is the max: weights as raw.
    // cos(q, d1) = (1.287682·0.965762 + 1.693147·1.269860) / (2.127175 · 2.411620)
    //            = (1.243594 + 2.150060) / 5.129937 = 0.661539
    let got = scores(Scheme::Tfidf, Some(TfMode::Augmented), "cat fish");
    assert_scores(&got[1..], &[("d0", 0.3134834273358)]);
    assert!((got[0].1 - 0.661539).abs() < 1e-6, "{got:?}");
}

#[test]
fn bow_is_cosine_of_counts() {
    // d0 = (the 1, cat 1, sat 1), |d0| = √3; d1 = (the 2, cat 1, ate 1, fish 1), |d1| = √7; q = (cat 1, fish 1), |q| = √2.
    // cos(q, d0) = 1/√6 = 0.408248290463863; cos(q, d1) = 2/√14 = 0.534522483824849
    let got = scores(Scheme::Bow, None, "Cat FISH");
    assert_scores(&got, &[("d1", 0.5345224838248), ("d0", 0.4082482904639)]);
}

#[test]
fn search_with_unknown_words_is_empty_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    LexicalIndex::build(docs(&CORPUS), Params::new(Scheme::Bm25, None, None, None).unwrap(), &out).unwrap();
    let index = LexicalIndex::open(&out).unwrap();
    assert!(index.search("zebra 斑马", 10).unwrap().is_empty());
    let q = index.query_terms("zebra cat").unwrap();
    assert_eq!((q.known, q.unknown), (vec!["cat".to_string()], vec!["zebra".to_string()]));
    assert!(index.search("", 10).unwrap().is_empty());
}

#[test]
fn build_refuses_empty_corpus_and_open_refuses_other_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    let p = Params::new(Scheme::Tfidf, None, None, None).unwrap();
    let e = LexicalIndex::build(Vec::new(), p, &out).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("no documents"), "{e}");
    let e = LexicalIndex::build(docs(&["...", "!!"]), p, &out).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("no words"), "{e}");
    assert!(!out.exists(), "nothing half-written");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temporary left behind");

    let e = LexicalIndex::open(&dir.path().join("missing")).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("no lexical index"), "{e}");
    LexicalIndex::build(docs(&CORPUS), p, &out).unwrap();
    let meta = out.join("meta.json");
    let text = std::fs::read_to_string(&meta).unwrap().replace("\"version\": 1", "\"version\": 99");
    std::fs::write(&meta, text).unwrap();
    let e = LexicalIndex::open(&out).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("version 99"), "{e}");

    // meta.json and the files disagree: a tfidf index whose meta.json claims bm25.
    let text = std::fs::read_to_string(&meta).unwrap().replace("\"version\": 99", "\"version\": 1").replace("\"tfidf\"", "\"bm25\"");
    std::fs::write(&meta, text).unwrap();
    let e = LexicalIndex::open(&out).err().unwrap();
    assert!(e.is_user_error() && e.to_string().contains("scheme bm25 but tantivy is missing"), "{e}");
}

#[test]
fn chinese_query_finds_chinese_document() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    let corpus = ["今天我们学习语言模型。", "The weather is fine today.", "小猫在院子里晒太阳。"];
    for scheme in [Scheme::Bm25, Scheme::Tfidf] {
        LexicalIndex::build(docs(&corpus), Params::new(scheme, None, None, None).unwrap(), &out).unwrap();
        let hits = LexicalIndex::open(&out).unwrap().search("语言模型", 5).unwrap();
        assert_eq!(hits.len(), 1, "{scheme:?}: {hits:?}");
        assert_eq!(hits[0].doc_id, "d0");
        assert_eq!(hits[0].marked("«", "»"), "今天我们学习«语言»«模型»。");
        let (s, e) = hits[0].spans[0];
        assert_eq!(&hits[0].snippet[s..e], "语言");
    }
}
