//! Okapi BM25 over a tantivy index.
//!
//! tantivy holds the postings (built with [`JielongTokenizer`], so the terms are jielong's
//! words), and we score them ourselves with the textbook formula in f64:
//!
//! ```text
//! score(q, d) = Σ_{t in q} idf(t) · tf(t,d) · (k1 + 1) / (tf(t,d) + k1 · (1 − b + b · |d| / avgdl))
//! idf(t)      = ln(1 + (N − n(t) + 0.5) / (n(t) + 0.5))          (Lucene's, never negative)
//! ```
//!
//! Why not tantivy's own scorer: it fixes k1 = 1.2 and b = 0.75 as constants, scores in f32,
//! and reads |d| from a one-byte "fieldnorm" that is exact only up to 40 words and rounded down
//! beyond (tests/bm25_tantivy.rs measures the difference). We keep the exact document lengths
//! (counted from the postings once, at build time) so `--k1`/`--b` work and scores equal the
//! formula on any length.

use crate::analyze::{JielongTokenizer, TOKENIZER_NAME};
use crate::docs::Doc;
use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use std::path::Path;
use tantivy::postings::Postings;
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST};
use tantivy::{DocSet, Index, IndexWriter, ReloadPolicy, Searcher, Term, TERMINATED};

/// The tantivy index's folder inside the index folder.
pub const DIR: &str = "tantivy";
/// Exact document lengths (words), by document number.
pub const LENGTHS: &str = "lengths.json";

/// A BM25 index: tantivy's postings plus exact document lengths.
pub struct Bm25Index {
    k1: f64,
    searcher: Searcher,
    body: Field,
    /// For each segment, the document number of each of its docs.
    ords: Vec<Vec<u32>>,
    lengths: Vec<u32>,
    /// k1 · (1 − b + b · |d| / avgdl) of every document, computed once.
    norms: Vec<f64>,
    avgdl: f64,
}

fn tv(path: &Path) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
    move |e| Error::format(path, format!("tantivy: {e}; rebuild the index with `jielong lexical index`"))
}

/// The schema: the analysed text (postings with frequencies, not stored: `docs.jsonl` holds the
/// text) and the document number as a fast field.
fn schema() -> Schema {
    let mut sb = Schema::builder();
    let indexing = TextFieldIndexing::default().set_tokenizer(TOKENIZER_NAME).set_index_option(IndexRecordOption::WithFreqs);
    sb.add_text_field("body", TextOptions::default().set_indexing_options(indexing));
    sb.add_u64_field("ord", FAST);
    sb.build()
}

/// Build the tantivy index for `docs` in `dir/tantivy` and write the exact lengths. Returns the
/// lengths.
pub fn build(dir: &Path, docs: &[Doc]) -> Result<Vec<u32>> {
    let tdir = dir.join(DIR);
    std::fs::create_dir_all(&tdir).at(&tdir)?;
    let schema = schema();
    let body = schema.get_field("body").expect("schema has body");
    let ord = schema.get_field("ord").expect("schema has ord");
    let index = Index::create_in_dir(&tdir, schema).map_err(tv(&tdir))?;
    index.tokenizers().register(TOKENIZER_NAME, JielongTokenizer::default());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let mut writer: IndexWriter = index.writer_with_num_threads(threads, threads * 64_000_000).map_err(tv(&tdir))?;
    for (i, d) in docs.iter().enumerate() {
        writer.add_document(tantivy::doc!(ord => i as u64, body => d.text.as_str())).map_err(tv(&tdir))?;
    }
    writer.commit().map_err(tv(&tdir))?;
    writer.wait_merging_threads().map_err(tv(&tdir))?;
    // Exact lengths: the sum of term frequencies of each document over the whole term dictionary.
    let (searcher, ords) = open_searcher(&index, &tdir)?;
    let mut lengths = vec![0u32; docs.len()];
    for (seg, seg_ords) in searcher.segment_readers().iter().zip(&ords) {
        let inv = seg.inverted_index(body).map_err(tv(&tdir))?;
        let mut stream = inv.terms().stream().at(&tdir)?;
        while stream.advance() {
            let mut postings = inv.read_postings_from_terminfo(stream.value(), IndexRecordOption::WithFreqs).at(&tdir)?;
            while postings.doc() != TERMINATED {
                lengths[seg_ords[postings.doc() as usize] as usize] += postings.term_freq();
                postings.advance();
            }
        }
    }
    let path = dir.join(LENGTHS);
    let text = serde_json::to_string(&lengths).map_err(|e| Error::Other(e.to_string()))?;
    std::fs::write(&path, text).at(&path)?;
    Ok(lengths)
}

/// A searcher over a committed index and, per segment, the document numbers of its docs.
fn open_searcher(index: &Index, tdir: &Path) -> Result<(Searcher, Vec<Vec<u32>>)> {
    let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(tv(tdir))?;
    let searcher = reader.searcher();
    let mut ords = Vec::new();
    for seg in searcher.segment_readers() {
        let col = seg.fast_fields().u64("ord").map_err(tv(tdir))?;
        let mut o = Vec::with_capacity(seg.max_doc() as usize);
        for doc in 0..seg.max_doc() {
            let v = col.first(doc).ok_or_else(|| Error::format(tdir, "a document has no number; rebuild the index"))?;
            o.push(v as u32);
        }
        ords.push(o);
    }
    Ok((searcher, ords))
}

/// Lucene's BM25 idf for a term in `df` of `n` documents.
pub fn idf(n: usize, df: u64) -> f64 {
    (1.0 + (n as f64 - df as f64 + 0.5) / (df as f64 + 0.5)).ln()
}

impl Bm25Index {
    /// Open `dir/tantivy` for an index of `n_docs` documents.
    pub fn open(dir: &Path, n_docs: usize, k1: f64, b: f64) -> Result<Self> {
        let tdir = dir.join(DIR);
        let index = Index::open_in_dir(&tdir).map_err(tv(&tdir))?;
        index.tokenizers().register(TOKENIZER_NAME, JielongTokenizer::default());
        let body = index.schema().get_field("body").map_err(tv(&tdir))?;
        let (searcher, ords) = open_searcher(&index, &tdir)?;
        let lpath = dir.join(LENGTHS);
        let lengths: Vec<u32> = serde_json::from_slice(&std::fs::read(&lpath).at(&lpath)?)
            .map_err(|e| Error::format(&lpath, format!("{e}; rebuild the index")))?;
        let total: usize = ords.iter().map(Vec::len).sum();
        if lengths.len() != n_docs || total != n_docs {
            return Err(Error::format(dir, format!("the BM25 index holds {total} documents and {} lengths, docs.jsonl {n_docs}; rebuild it", lengths.len())));
        }
        let avgdl = lengths.iter().map(|&l| l as f64).sum::<f64>() / n_docs.max(1) as f64;
        let norms = lengths.iter().map(|&l| k1 * (1.0 - b + b * l as f64 / avgdl)).collect();
        Ok(Bm25Index { k1, searcher, body, ords, lengths, norms, avgdl })
    }

    fn term(&self, t: &str) -> Term {
        Term::from_field_text(self.body, t)
    }

    /// Number of documents that contain `t`.
    pub fn doc_freq(&self, t: &str) -> Result<u64> {
        self.searcher.doc_freq(&self.term(t)).map_err(|e| Error::Other(format!("tantivy: {e}")))
    }

    /// BM25 of every document that holds a query term, as (document, score), in no particular
    /// order. A term repeated in the query counts as often as it is repeated (as in Lucene and
    /// rank_bm25).
    pub fn score(&self, query_terms: &[String]) -> Result<Vec<(u32, f64)>> {
        let n = self.lengths.len();
        let mut qtf: Vec<(&str, f64)> = crate::vector::counts(query_terms).into_iter().map(|(t, c)| (t, c as f64)).collect();
        qtf.sort_by(|a, b| a.0.cmp(b.0));
        // A dense accumulator: every term's contribution is positive (idf > 0, tf ≥ 1), so 0
        // means "not touched yet".
        let mut acc = vec![0.0f64; n];
        let mut touched: Vec<u32> = Vec::new();
        for (t, times) in qtf {
            let df = self.doc_freq(t)?;
            if df == 0 {
                continue;
            }
            let w = times * idf(n, df) * (self.k1 + 1.0);
            let term = self.term(t);
            for (seg, ords) in self.searcher.segment_readers().iter().zip(&self.ords) {
                let inv = seg.inverted_index(self.body).map_err(|e| Error::Other(format!("tantivy: {e}")))?;
                let Some(mut postings) = inv.read_postings(&term, IndexRecordOption::WithFreqs).map_err(|e| Error::Other(format!("tantivy: {e}")))? else {
                    continue;
                };
                while postings.doc() != TERMINATED {
                    let d = ords[postings.doc() as usize];
                    let tf = postings.term_freq() as f64;
                    let slot = &mut acc[d as usize];
                    if *slot == 0.0 {
                        touched.push(d);
                    }
                    *slot += w * tf / (tf + self.norms[d as usize]);
                    postings.advance();
                }
            }
        }
        Ok(touched.into_iter().map(|d| (d, acc[d as usize])).collect())
    }

    /// The searcher over the tantivy index (for callers that want tantivy's own queries).
    pub fn searcher(&self) -> &Searcher {
        &self.searcher
    }

    /// Average document length in words.
    pub fn avgdl(&self) -> f64 {
        self.avgdl
    }
}
