//! `LexicalIndex`: build an index folder, open it, search it.
//!
//! An index folder holds `meta.json` (format version, scheme and parameters, counts, the jielong
//! version that wrote it), `docs.jsonl` (every document's id, title and text, for snippets), and
//! either `vectors.json` (bow, tfidf) or `tantivy/` + `lengths.json` (bm25). It is built under a
//! temporary name and renamed into place, so a reader never sees half of one.

use crate::analyze::term_texts;
use crate::bm25::{self, Bm25Index};
use crate::docs::{load_docs, write_docs, Doc};
use crate::params::{Params, Scheme};
use crate::snippet::snippet;
use crate::vector::VectorIndex;
use jielong_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// `meta.json`'s `format` value.
pub const FORMAT: &str = "jielong-lexical-index";
/// The layout version this code writes and reads.
pub const VERSION: u32 = 1;

/// `meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub format: String,
    pub version: u32,
    #[serde(flatten)]
    pub params: Params,
    pub documents: usize,
    /// Distinct terms.
    pub terms: usize,
    /// Words in all documents together.
    pub words: u64,
    /// How text was cut into terms.
    pub analyzer: String,
    pub jielong_version: String,
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// Position of the document in the index (0-based).
    pub doc: usize,
    /// The document's id (JSONL `id`, or its path, `path:line`, `path#passage`).
    pub doc_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub score: f64,
    /// The best-matching passage.
    pub snippet: String,
    /// Byte offset of the passage in the document.
    pub snippet_start: usize,
    /// Byte ranges of the query terms in `snippet`.
    pub spans: Vec<(usize, usize)>,
    #[serde(skip)]
    pub(crate) cut: (bool, bool),
}

impl Hit {
    /// The snippet with matches wrapped in `open`/`close` and "…" where the document goes on.
    pub fn marked(&self, open: &str, close: &str) -> String {
        crate::snippet::Snippet { text: self.snippet.clone(), start: self.snippet_start, spans: self.spans.clone(), cut_before: self.cut.0, cut_after: self.cut.1 }
            .marked(open, close)
    }
}

/// A query's words split into those the index knows and those it does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryTerms {
    pub known: Vec<String>,
    pub unknown: Vec<String>,
}

enum Scorer {
    Vector(VectorIndex),
    Bm25(Bm25Index),
}

/// An opened lexical index.
pub struct LexicalIndex {
    meta: Meta,
    docs: Vec<Doc>,
    scorer: Scorer,
}

/// What `LexicalIndex::build` did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub meta: Meta,
    pub path: PathBuf,
}

impl LexicalIndex {
    /// Build an index of `docs` with `params` into the folder `out` (replacing one that is
    /// there), atomically. An empty corpus, or one without a single word, is refused.
    pub fn build(docs: Vec<Doc>, params: Params, out: &Path) -> Result<BuildReport> {
        if docs.is_empty() {
            return Err(Error::input("no documents to index: the inputs hold no text (or no JSONL line has a \"text\" field)"));
        }
        if let Ok(meta) = std::fs::metadata(out) {
            if !meta.is_dir() || (std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false) && !out.join("meta.json").exists()) {
                return Err(Error::input(format!("{}: exists and is not a lexical index; choose another --out", out.display())));
            }
        }
        let dir = jielong_core::fs::AtomicDir::new(out)?;
        let (terms, words) = match params.scheme {
            Scheme::Bm25 => {
                let lengths = bm25::build(dir.path(), &docs)?;
                let words: u64 = lengths.iter().map(|&l| l as u64).sum();
                let tdir = dir.path().join(bm25::DIR);
                let index = tantivy::Index::open_in_dir(&tdir).map_err(|e| Error::Other(format!("tantivy: {e}")))?;
                let reader: tantivy::IndexReader = index
                    .reader_builder()
                    .reload_policy(tantivy::ReloadPolicy::Manual)
                    .try_into()
                    .map_err(|e| Error::Other(format!("tantivy: {e}")))?;
                let searcher = reader.searcher();
                let body = index.schema().get_field("body").map_err(|e| Error::Other(format!("tantivy: {e}")))?;
                // Distinct terms over segments (a term in two segments counts once).
                let mut all = HashSet::new();
                for seg in searcher.segment_readers() {
                    let inv = seg.inverted_index(body).map_err(|e| Error::Other(format!("tantivy: {e}")))?;
                    let mut s = inv.terms().stream().map_err(|e| Error::io(&tdir, e))?;
                    while s.advance() {
                        all.insert(s.key().to_vec());
                    }
                }
                (all.len(), words)
            }
            Scheme::Bow | Scheme::Tfidf => {
                let doc_terms: Vec<Vec<String>> = docs.iter().map(|d| term_texts(&d.text)).collect();
                let words = doc_terms.iter().map(|t| t.len() as u64).sum();
                let v = VectorIndex::build(params, &doc_terms);
                v.save(dir.path())?;
                (v.vocab_size(), words)
            }
        };
        if words == 0 {
            return Err(Error::input(format!("the {} documents hold no words (only punctuation or whitespace): nothing to index", docs.len())));
        }
        write_docs(&dir.path().join("docs.jsonl"), &docs)?;
        let meta = Meta {
            format: FORMAT.into(),
            version: VERSION,
            params,
            documents: docs.len(),
            terms,
            words,
            analyzer: "jielong-text words (UAX #29, jieba for Chinese), lowercased".into(),
            jielong_version: env!("CARGO_PKG_VERSION").into(),
        };
        jielong_core::fs::write_json_atomic(&dir.path().join("meta.json"), &meta)?;
        let path = dir.commit()?;
        Ok(BuildReport { meta, path })
    }

    /// Read `meta.json` of the index at `path`, checking that it is a lexical index of this
    /// version.
    pub fn read_meta(path: &Path) -> Result<Meta> {
        if !path.is_dir() {
            return Err(Error::input(format!(
                "{}: no lexical index there; build one with `jielong lexical index --scheme bm25 --out {} DOCS…`",
                path.display(),
                path.display()
            )));
        }
        let mpath = path.join("meta.json");
        let text = std::fs::read_to_string(&mpath)
            .map_err(|_| Error::format(path, "not a lexical index (no meta.json); build one with `jielong lexical index`"))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::format(&mpath, format!("not valid JSON ({e}); rebuild the index")))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(Error::format(&mpath, "not a lexical index's meta.json; build one with `jielong lexical index`"));
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != VERSION as u64 {
            return Err(Error::format(
                path,
                format!("lexical index format version {version}, this jielong reads version {VERSION}; rebuild it with `jielong lexical index`"),
            ));
        }
        serde_json::from_value(value).map_err(|e| Error::format(&mpath, format!("{e}; rebuild the index")))
    }

    /// Open the index at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let meta = Self::read_meta(path)?;
        let docs = load_docs(&path.join("docs.jsonl"))?;
        if docs.len() != meta.documents {
            return Err(Error::format(path, format!("meta.json says {} documents, docs.jsonl holds {}; rebuild the index", meta.documents, docs.len())));
        }
        let p = meta.params;
        let needed: &[&str] = match p.scheme {
            Scheme::Bm25 => &[bm25::DIR, bm25::LENGTHS],
            Scheme::Bow | Scheme::Tfidf => &[crate::vector::FILE],
        };
        if let Some(missing) = needed.iter().find(|f| !path.join(f).exists()) {
            return Err(Error::format(
                path,
                format!("meta.json says scheme {} but {missing} is missing; rebuild the index with `jielong lexical index`", p.scheme.name()),
            ));
        }
        let scorer = match p.scheme {
            Scheme::Bm25 => {
                let (Some(k1), Some(b)) = (p.k1, p.b) else {
                    return Err(Error::format(path, "a bm25 index without k1 and b in meta.json; rebuild it"));
                };
                Scorer::Bm25(Bm25Index::open(path, docs.len(), k1, b)?)
            }
            Scheme::Bow | Scheme::Tfidf => Scorer::Vector(VectorIndex::load(path, p, docs.len())?),
        };
        Ok(LexicalIndex { meta, docs, scorer })
    }

    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    pub fn docs(&self) -> &[Doc] {
        &self.docs
    }

    /// The query's words, split into known and unknown to this index (duplicates kept in order
    /// of first appearance, once each).
    pub fn query_terms(&self, query: &str) -> Result<QueryTerms> {
        let mut q = QueryTerms::default();
        let mut seen = HashSet::new();
        for t in term_texts(query) {
            if !seen.insert(t.clone()) {
                continue;
            }
            let known = match &self.scorer {
                Scorer::Vector(v) => v.contains(&t),
                Scorer::Bm25(b) => b.doc_freq(&t)? > 0,
            };
            if known { q.known.push(t) } else { q.unknown.push(t) }
        }
        Ok(q)
    }

    /// Score of every document that shares a word with `query`, unsorted (documents that share
    /// none score 0 and are left out).
    pub fn scores(&self, query: &str) -> Result<Vec<(usize, f64)>> {
        let terms = term_texts(query);
        let raw = match &self.scorer {
            Scorer::Vector(v) => v.score(&terms),
            Scorer::Bm25(b) => b.score(&terms)?,
        };
        Ok(raw.into_iter().map(|(d, s)| (d as usize, s)).collect())
    }

    /// The `k` best (document, score) for `query`, best first (ties: earlier document first),
    /// without passages: what batch retrieval and evaluation need.
    pub fn top_k(&self, query: &str, k: usize) -> Result<Vec<(usize, f64)>> {
        let mut scored = self.scores(query)?;
        scored.retain(|&(_, s)| s > 0.0);
        let by = |a: &(usize, f64), b: &(usize, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > k && k > 0 {
            scored.select_nth_unstable_by(k - 1, by);
            scored.truncate(k);
        }
        scored.sort_by(by);
        scored.truncate(k);
        Ok(scored)
    }

    /// The `k` best documents for `query`, best first (ties: earlier document first), each with
    /// its best passage. Empty when no query word is in the index.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let scored = self.top_k(query, k)?;
        let terms = term_texts(query);
        let qset: HashSet<&str> = terms.iter().map(String::as_str).collect();
        Ok(scored
            .into_iter()
            .map(|(d, score)| {
                let doc = &self.docs[d];
                let s = snippet(&doc.text, &qset);
                Hit {
                    doc: d,
                    doc_id: doc.id.clone(),
                    title: doc.title.clone(),
                    score,
                    snippet: s.text,
                    snippet_start: s.start,
                    spans: s.spans,
                    cut: (s.cut_before, s.cut_after),
                }
            })
            .collect())
    }

    /// The BM25 index, for callers that want tantivy itself (None for bow and tfidf).
    pub fn bm25(&self) -> Option<&Bm25Index> {
        match &self.scorer {
            Scorer::Bm25(b) => Some(b),
            Scorer::Vector(_) => None,
        }
    }
}
