//! What an index scores with: the scheme and its parameters, checked once, stored in
//! `meta.json` beside the index so `search` scores the way the index was built.

use jielong_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// How documents are weighted and compared with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Bag of words: raw counts, compared by cosine similarity.
    Bow,
    /// TF-IDF with smooth idf and l2 normalisation, compared by cosine similarity.
    Tfidf,
    /// Okapi BM25 (Lucene's idf), postings held in a tantivy index.
    Bm25,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Bow => "bow",
            Scheme::Tfidf => "tfidf",
            Scheme::Bm25 => "bm25",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "bow" => Ok(Scheme::Bow),
            "tfidf" | "tf-idf" => Ok(Scheme::Tfidf),
            "bm25" => Ok(Scheme::Bm25),
            other => Err(Error::input(format!("scheme `{other}` is not known: use bow, tfidf or bm25"))),
        }
    }
}

/// The term-frequency component of TF-IDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TfMode {
    /// The count itself.
    Raw,
    /// 1 + ln(count) (scikit-learn's `sublinear_tf`).
    Log,
    /// 0.5 + 0.5 · count / (largest count in the document).
    Augmented,
}

impl TfMode {
    pub fn name(self) -> &'static str {
        match self {
            TfMode::Raw => "raw",
            TfMode::Log => "log",
            TfMode::Augmented => "augmented",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(TfMode::Raw),
            "log" | "sublinear" => Ok(TfMode::Log),
            "augmented" => Ok(TfMode::Augmented),
            other => Err(Error::input(format!("--tf `{other}` is not known: use raw, log or augmented"))),
        }
    }

    /// The weight of a term seen `tf` times in a text whose most frequent term is seen `max_tf`
    /// times (`tf` ≥ 1).
    pub fn weight(self, tf: f64, max_tf: f64) -> f64 {
        match self {
            TfMode::Raw => tf,
            TfMode::Log => 1.0 + tf.ln(),
            TfMode::Augmented => 0.5 + 0.5 * tf / max_tf,
        }
    }
}

/// The scheme and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub scheme: Scheme,
    /// TF-IDF only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tf: Option<TfMode>,
    /// BM25 only: term-frequency saturation.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub k1: Option<f64>,
    /// BM25 only: length normalisation (0 = none, 1 = full).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub b: Option<f64>,
}

/// BM25's usual defaults (Lucene, tantivy, Elasticsearch).
pub const DEFAULT_K1: f64 = 1.2;
pub const DEFAULT_B: f64 = 0.75;

impl Params {
    /// Parameters for `scheme`, filling defaults and refusing parameters that belong to another
    /// scheme or are out of range.
    pub fn new(scheme: Scheme, tf: Option<TfMode>, k1: Option<f64>, b: Option<f64>) -> Result<Self> {
        match scheme {
            Scheme::Bm25 => {
                if tf.is_some() {
                    return Err(Error::input("--tf applies to --scheme tfidf only; BM25 saturates term frequency through --k1"));
                }
                let k1 = k1.unwrap_or(DEFAULT_K1);
                let b = b.unwrap_or(DEFAULT_B);
                if !(k1.is_finite() && k1 >= 0.0) {
                    return Err(Error::input(format!("--k1 {k1} is out of range: use a number ≥ 0 (1.2 is usual)")));
                }
                if !(0.0..=1.0).contains(&b) {
                    return Err(Error::input(format!("--b {b} is out of range: use a number from 0 to 1 (0.75 is usual)")));
                }
                Ok(Params { scheme, tf: None, k1: Some(k1), b: Some(b) })
            }
            Scheme::Tfidf | Scheme::Bow => {
                if k1.is_some() || b.is_some() {
                    return Err(Error::input(format!("--k1 and --b apply to --scheme bm25 only, not {}", scheme.name())));
                }
                if scheme == Scheme::Bow && tf.is_some() {
                    return Err(Error::input("--tf applies to --scheme tfidf only; bow uses raw counts"));
                }
                let tf = (scheme == Scheme::Tfidf).then(|| tf.unwrap_or(TfMode::Raw));
                Ok(Params { scheme, tf, k1: None, b: None })
            }
        }
    }

    /// "bm25 (k1 1.2, b 0.75)", "tfidf (log tf)", "bow".
    pub fn describe(&self) -> String {
        match self.scheme {
            Scheme::Bm25 => format!("bm25 (k1 {}, b {})", self.k1.unwrap_or(DEFAULT_K1), self.b.unwrap_or(DEFAULT_B)),
            Scheme::Tfidf => format!("tfidf ({} tf, smooth idf, l2)", self.tf.unwrap_or(TfMode::Raw).name()),
            Scheme::Bow => "bow (counts, cosine)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_fill_defaults_and_refuse_wrong_ones() {
        let p = Params::new(Scheme::Bm25, None, None, None).unwrap();
        assert_eq!((p.k1, p.b), (Some(1.2), Some(0.75)));
        assert_eq!(Params::new(Scheme::Tfidf, None, None, None).unwrap().tf, Some(TfMode::Raw));
        for bad in [
            Params::new(Scheme::Bm25, None, Some(-1.0), None),
            Params::new(Scheme::Bm25, None, Some(f64::NAN), None),
            Params::new(Scheme::Bm25, None, None, Some(1.5)),
            Params::new(Scheme::Bm25, Some(TfMode::Log), None, None),
            Params::new(Scheme::Tfidf, None, Some(1.0), None),
            Params::new(Scheme::Bow, Some(TfMode::Log), None, None),
        ] {
            assert!(bad.unwrap_err().is_user_error());
        }
        assert!(Scheme::parse("bm26").is_err());
    }

    #[test]
    fn tf_modes_weigh_counts() {
        assert_eq!(TfMode::Raw.weight(3.0, 4.0), 3.0);
        assert!((TfMode::Log.weight(3.0, 4.0) - (1.0 + 3f64.ln())).abs() < 1e-15);
        assert_eq!(TfMode::Augmented.weight(2.0, 4.0), 0.75);
    }
}
