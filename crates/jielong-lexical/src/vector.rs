//! Bag-of-words and TF-IDF: every document is a sparse vector over the vocabulary, scaled to
//! unit length, and a query is scored by cosine similarity (the dot product of two unit
//! vectors). The vectors are held as an inverted index (term → the documents that contain it and
//! their weights), so a query only touches the documents that share a word with it.
//!
//! TF-IDF follows scikit-learn's `TfidfVectorizer(smooth_idf=True, norm="l2")`:
//! idf(t) = ln((1 + N) / (1 + df(t))) + 1, weight = tf-component × idf, then l2 normalisation;
//! the query is transformed the same way (its unknown words dropped).

use crate::params::{Params, Scheme, TfMode};
use jielong_core::error::IoContext;
use jielong_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// File name inside the index folder.
pub const FILE: &str = "vectors.json";

/// The on-disk form: terms sorted, postings flattened (term i owns `docs[offsets[i]..offsets[i+1]]`).
#[derive(Serialize, Deserialize)]
struct VectorFile {
    terms: Vec<String>,
    df: Vec<u32>,
    idf: Vec<f64>,
    offsets: Vec<u64>,
    docs: Vec<u32>,
    weights: Vec<f64>,
}

/// An inverted index of unit-length document vectors.
pub struct VectorIndex {
    params: Params,
    n_docs: usize,
    lookup: HashMap<String, usize>,
    file: VectorFile,
}

/// Counts of each term in a list of terms.
pub(crate) fn counts<S: AsRef<str>>(terms: &[S]) -> HashMap<&str, u32> {
    let mut c = HashMap::new();
    for t in terms {
        *c.entry(t.as_ref()).or_insert(0) += 1;
    }
    c
}

/// Smooth idf, as scikit-learn computes it.
pub fn smooth_idf(n_docs: usize, df: u32) -> f64 {
    ((1.0 + n_docs as f64) / (1.0 + df as f64)).ln() + 1.0
}

/// The weights of a text's terms before normalisation (term, weight) and their l2 norm.
fn weigh(params: &Params, counts: &HashMap<&str, u32>, idf: impl Fn(&str) -> f64) -> (Vec<(String, f64)>, f64) {
    let max_tf = counts.values().copied().max().unwrap_or(1) as f64;
    let tf_mode = params.tf.unwrap_or(TfMode::Raw);
    let mut out: Vec<(String, f64)> = counts
        .iter()
        .map(|(t, &c)| {
            let w = match params.scheme {
                Scheme::Tfidf => tf_mode.weight(c as f64, max_tf) * idf(t),
                _ => c as f64,
            };
            (t.to_string(), w)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let norm = out.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
    (out, norm)
}

impl VectorIndex {
    /// Build from each document's analysed terms.
    pub fn build(params: Params, doc_terms: &[Vec<String>]) -> Self {
        let n = doc_terms.len();
        let doc_counts: Vec<HashMap<&str, u32>> = doc_terms.iter().map(|t| counts(t)).collect();
        let mut df: BTreeMap<&str, u32> = BTreeMap::new();
        for c in &doc_counts {
            for t in c.keys() {
                *df.entry(t).or_insert(0) += 1;
            }
        }
        let terms: Vec<String> = df.keys().map(|t| t.to_string()).collect();
        let lookup: HashMap<String, usize> = terms.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        let dfs: Vec<u32> = df.values().copied().collect();
        let idf: Vec<f64> = dfs.iter().map(|&d| if params.scheme == Scheme::Tfidf { smooth_idf(n, d) } else { 1.0 }).collect();
        let mut postings: Vec<Vec<(u32, f64)>> = vec![Vec::new(); terms.len()];
        for (d, c) in doc_counts.iter().enumerate() {
            let (weights, norm) = weigh(&params, c, |t| idf[lookup[t]]);
            for (t, w) in weights {
                postings[lookup[&t]].push((d as u32, w / norm));
            }
        }
        let mut offsets = vec![0u64];
        let (mut docs, mut weights) = (Vec::new(), Vec::new());
        for p in postings {
            for (d, w) in p {
                docs.push(d);
                weights.push(w);
            }
            offsets.push(docs.len() as u64);
        }
        VectorIndex { params, n_docs: n, lookup, file: VectorFile { terms, df: dfs, idf, offsets, docs, weights } }
    }

    /// Write into the (temporary) index folder `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(FILE);
        let f = std::fs::File::create(&path).at(&path)?;
        let mut w = std::io::BufWriter::new(f);
        serde_json::to_writer(&mut w, &self.file).map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
        std::io::Write::flush(&mut w).at(&path)
    }

    /// Read from an index folder of `n_docs` documents.
    pub fn load(dir: &Path, params: Params, n_docs: usize) -> Result<Self> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).at(&path)?;
        let file: VectorFile = serde_json::from_slice(&bytes)
            .map_err(|e| Error::format(&path, format!("{e}; rebuild the index with `jielong lexical index`")))?;
        let n = file.terms.len();
        let bad_doc = file.docs.iter().any(|&d| d as usize >= n_docs);
        if file.df.len() != n || file.idf.len() != n || file.offsets.len() != n + 1 || file.docs.len() != file.weights.len() || bad_doc {
            return Err(Error::format(&path, "inconsistent lengths; rebuild the index with `jielong lexical index`"));
        }
        let lookup = file.terms.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect();
        Ok(VectorIndex { params, n_docs, lookup, file })
    }

    pub fn contains(&self, term: &str) -> bool {
        self.lookup.contains_key(term)
    }

    pub fn vocab_size(&self) -> usize {
        self.file.terms.len()
    }

    /// Cosine similarity of the query with every document that shares a term with it, as
    /// (document, score), in no particular order.
    pub fn score(&self, query_terms: &[String]) -> Vec<(u32, f64)> {
        let known: Vec<&String> = query_terms.iter().filter(|t| self.contains(t)).collect();
        let c = counts(&known);
        let (weights, norm) = weigh(&self.params, &c, |t| self.file.idf[self.lookup[t]]);
        if norm == 0.0 {
            return Vec::new();
        }
        // Dense accumulator; every weight is positive, so 0 means "not touched yet".
        let mut acc = vec![0.0f64; self.n_docs];
        let mut touched: Vec<u32> = Vec::new();
        for (t, qw) in weights {
            let i = self.lookup[&t];
            let (from, to) = (self.file.offsets[i] as usize, self.file.offsets[i + 1] as usize);
            let q = qw / norm;
            for (&d, &dw) in self.file.docs[from..to].iter().zip(&self.file.weights[from..to]) {
                let slot = &mut acc[d as usize];
                if *slot == 0.0 {
                    touched.push(d);
                }
                *slot += q * dw;
            }
        }
        touched.into_iter().map(|d| (d, acc[d as usize])).collect()
    }
}
