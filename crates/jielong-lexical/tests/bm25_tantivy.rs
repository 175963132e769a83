//! Does tantivy's own BM25 equal the textbook formula? It does on documents of up to 40 words
//! (within f32 rounding). Beyond that tantivy stores a document's length as a one-byte
//! "fieldnorm" that rounds it down (41 → 40, 100 → 96, 1000 → 984), so its scores for long
//! documents are those of a slightly shorter document. jielong scores with exact lengths in f64;
//! this test measures the difference and pins its cause, so docs/ARCHITECTURE.md stays true.

use jielong_lexical::bm25::idf;
use jielong_lexical::{Doc, LexicalIndex, Params, Scheme};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::Term;

fn build(texts: &[String]) -> (tempfile::TempDir, LexicalIndex) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("idx");
    let docs = texts.iter().enumerate().map(|(i, t)| Doc { id: format!("d{i}"), title: None, text: t.clone() }).collect();
    LexicalIndex::build(docs, Params::new(Scheme::Bm25, None, None, None).unwrap(), &out).unwrap();
    let index = LexicalIndex::open(&out).unwrap();
    (dir, index)
}

/// tantivy's own BM25 (a boolean OR of term queries), as (document number, score).
fn tantivy_scores(index: &LexicalIndex, terms: &[&str]) -> Vec<(usize, f64)> {
    let searcher = index.bm25().unwrap().searcher();
    let body = searcher.schema().get_field("body").unwrap();
    let clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .iter()
        .map(|t| (Occur::Should, Box::new(TermQuery::new(Term::from_field_text(body, t), IndexRecordOption::WithFreqs)) as Box<dyn Query>))
        .collect();
    let top = searcher.search(&BooleanQuery::new(clauses), &TopDocs::with_limit(100).order_by_score()).unwrap();
    top.into_iter()
        .map(|(score, addr)| {
            let ord = searcher.segment_reader(addr.segment_ord).fast_fields().u64("ord").unwrap().first(addr.doc_id).unwrap();
            (ord as usize, score as f64)
        })
        .collect()
}

fn ours(index: &LexicalIndex, query: &str) -> std::collections::HashMap<usize, f64> {
    index.scores(query).unwrap().into_iter().collect()
}

#[test]
fn tantivy_bm25_equals_textbook_on_short_documents() {
    // Lengths 3 to 40 words: all below tantivy's exact fieldnorm limit.
    let texts: Vec<String> = (0..12)
        .map(|i| {
            let filler = "lorem ipsum dolor ".repeat(i + 1);
            let extra = if i % 3 == 0 { "river river " } else { "" };
            format!("{filler}{extra}mill {}", if i % 2 == 0 { "river" } else { "garden" })
        })
        .collect();
    let (_dir, index) = build(&texts);
    let ours = ours(&index, "river garden");
    let theirs = tantivy_scores(&index, &["river", "garden"]);
    assert_eq!(theirs.len(), ours.len());
    for (d, s) in theirs {
        assert!((s - ours[&d]).abs() <= 1e-5 * ours[&d], "doc {d}: tantivy {s} vs textbook {}", ours[&d]);
    }
}

#[test]
fn tantivy_bm25_rounds_long_documents_down() {
    // d0 has 100 words, which tantivy stores as 96; d1 and d2 are short.
    let mut long = "lorem ".repeat(99);
    long.push_str("river");
    let texts = vec![long, "the river".to_string(), "a garden".to_string()];
    let (_dir, index) = build(&texts);
    let ours = ours(&index, "river");
    let theirs: std::collections::HashMap<usize, f64> = tantivy_scores(&index, &["river"]).into_iter().collect();
    let (exact, quantised) = (ours[&0], theirs[&0]);
    assert!(quantised > exact * 1.005, "tantivy {quantised} vs textbook {exact}: expected a higher score from a rounded-down length");
    // tantivy's number is the textbook formula with |d0| = 96 (avgdl stays exact: 104/3).
    let (k1, b, avgdl) = (1.2, 0.75, 104.0 / 3.0);
    let with_96 = idf(3, 2) * 2.2 / (1.0 + k1 * (1.0 - b + b * 96.0 / avgdl));
    assert!((quantised - with_96).abs() <= 1e-5 * with_96, "tantivy {quantised} vs formula with 96 words {with_96}");
    // Short documents agree.
    assert!((theirs[&1] - ours[&1]).abs() <= 1e-5 * ours[&1]);
}
