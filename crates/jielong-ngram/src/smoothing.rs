//! The smoothing methods and the Kneser-Ney discounts.
//!
//! Every method below is written in one recursive form, order by order, for a context h and a
//! unit w (h' is h without its oldest unit, |V| the units a model predicts: every unit but
//! `<s>`, `<unk>` and `</s>` included):
//!
//! ```text
//! p(w | h) = α(h w) + γ(h) · p(w | h')        p(w | empty context) = α(w) + γ · 1/|V|
//! ```
//!
//! - **mle**: α = c(h w) / c(h), γ = 0. A context never seen falls back to a shorter one.
//! - **add-k** (k = 1: Laplace): p = (c(h w) + k) / (c(h) + k|V|) with the full context only,
//!   i.e. α = c(h w) / (c(h) + k|V|), γ = k|V| / (c(h) + k|V|) and the lower distribution is
//!   uniform, 1/|V|, at every order.
//! - **interpolated-add-k**: the same α and γ with its own k per order, but the lower
//!   distribution is the next-lower order's own interpolated add-k estimate (the unigram is
//!   add-k towards uniform): p(w | h) = (c(h w) + k|V| · p(w | h')) / (c(h) + k|V|).
//! - **kneser-ney** (interpolated, Chen & Goodman 1998 §3): counts are KenLM's adjusted counts
//!   a (see `counts.rs`), α = max(a(h w) − D, 0) / Σ_v a(h v), γ = D · N1+(h •) / Σ_v a(h v),
//!   one discount D per order.
//! - **modified-kneser-ney** (Chen & Goodman 1998, eq. 26; what KenLM's `lmplz` builds): three
//!   discounts per order, D(a) = D1, D2 or D3+ for a = 1, 2, ≥ 3, and
//!   γ = (D1·N1(h •) + D2·N2(h •) + D3+·N3+(h •)) / Σ_v a(h v).
//!
//! The discounts come from counts-of-counts n_j (the number of n-grams of that order whose
//! adjusted count is exactly j):
//!
//! ```text
//! Y   = n1 / (n1 + 2·n2)                                  (Ney, Essen & Kneser 1994)
//! D   = Y                                                  kneser-ney
//! D_j = j − (j + 1) · Y · n_{j+1} / n_j,  j = 1, 2, 3      modified-kneser-ney, C&G eq. (26)
//! ```
//!
//! Each must lie in [0, j] (KenLM's check); with too little data it does not, and the user
//! either brings more text or passes fallback discounts (KenLM's `--discount_fallback`,
//! 0.5 1 1.5).

use jielong_core::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum Smoothing {
    Mle,
    AddK { k: f64 },
    /// One k per order (index m − 1).
    InterpolatedAddK { ks: Vec<f64> },
    KneserNey,
    ModifiedKneserNey,
}

/// The names `--smoothing` accepts.
pub const NAMES: &[&str] = &["mle", "add-k", "interpolated-add-k", "kneser-ney", "modified-kneser-ney"];

/// KenLM's fallback discounts D1, D2, D3+.
pub const FALLBACK: [f64; 3] = [0.5, 1.0, 1.5];

impl Smoothing {
    /// From `--smoothing NAME` and `--k` (one value, or one per order separated by commas; only
    /// the add-k methods take it; default 1 for add-k, 0.5 for interpolated-add-k).
    pub fn parse(name: &str, k: Option<&str>, order: usize) -> Result<Self> {
        let ks = match k {
            None => None,
            Some(text) => {
                let mut ks = Vec::new();
                for part in text.split(',') {
                    let v: f64 = part.trim().parse().map_err(|_| Error::input(format!("--k {text}: `{part}` is not a number")))?;
                    if !(v > 0.0 && v.is_finite()) {
                        return Err(Error::input(format!("--k {text}: k must be positive (k = 1 is Laplace smoothing)")));
                    }
                    ks.push(v);
                }
                Some(ks)
            }
        };
        let takes_k = matches!(name, "add-k" | "laplace" | "interpolated-add-k");
        if ks.is_some() && !takes_k {
            return Err(Error::input(format!("--k applies to add-k and interpolated-add-k, not to --smoothing {name}")));
        }
        Ok(match name {
            "mle" => Smoothing::Mle,
            "laplace" => Smoothing::AddK { k: 1.0 },
            "add-k" => match ks.as_deref() {
                None => Smoothing::AddK { k: 1.0 },
                Some([k]) => Smoothing::AddK { k: *k },
                Some(_) => return Err(Error::input("--k: add-k takes one k; one per order is for interpolated-add-k")),
            },
            "interpolated-add-k" => {
                let ks = ks.unwrap_or_else(|| vec![0.5]);
                let ks = match ks.len() {
                    1 => vec![ks[0]; order],
                    n if n == order => ks,
                    n => return Err(Error::input(format!("--k gives {n} values: give one, or one per order ({order})"))),
                };
                Smoothing::InterpolatedAddK { ks }
            }
            "kneser-ney" | "kn" => Smoothing::KneserNey,
            "modified-kneser-ney" | "mkn" => Smoothing::ModifiedKneserNey,
            other => return Err(Error::input(format!("--smoothing {other} is not known: use one of {}", NAMES.join(", ")))),
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Smoothing::Mle => "mle",
            Smoothing::AddK { .. } => "add-k",
            Smoothing::InterpolatedAddK { .. } => "interpolated-add-k",
            Smoothing::KneserNey => "kneser-ney",
            Smoothing::ModifiedKneserNey => "modified-kneser-ney",
        }
    }

    /// Whether counts are Kneser-Ney's adjusted counts.
    pub fn uses_adjusted_counts(&self) -> bool {
        matches!(self, Smoothing::KneserNey | Smoothing::ModifiedKneserNey)
    }
}

/// Counts-of-counts n_1..n_4 of one order (index j − 1 holds n_j).
pub fn counts_of_counts(adjusted: impl Iterator<Item = u64>) -> [u64; 4] {
    let mut n = [0u64; 4];
    for a in adjusted {
        if (1..=4).contains(&a) {
            n[a as usize - 1] += 1;
        }
    }
    n
}

/// The discounts D1, D2, D3+ of one order (all three equal for plain Kneser-Ney), or an error
/// that says why they do not exist; `fallback` replaces them instead of failing.
pub fn discounts(n: [u64; 4], modified: bool, order: usize, fallback: Option<[f64; 3]>) -> Result<[f64; 3]> {
    let [n1, n2, n3, n4] = n.map(|x| x as f64);
    let computed = (|| {
        // n1..n3 (modified) or n1, n2 must be non-zero; n4 may be 0 (then D3+ = 3), as in KenLM.
        let needed = if modified { 3 } else { 2 };
        if let Some(j) = (0..needed).find(|&j| n[j] == 0) {
            return Err(format!("no {order}-gram was seen exactly {} time(s) after count adjustment", j + 1));
        }
        let y = n1 / (n1 + 2.0 * n2);
        let d = if modified { [1.0 - 2.0 * y * n2 / n1, 2.0 - 3.0 * y * n3 / n2, 3.0 - 4.0 * y * n4 / n3] } else { [y; 3] };
        for (j, &dj) in d.iter().enumerate() {
            let cap = if modified { (j + 1) as f64 } else { 1.0 };
            if !(dj >= 0.0 && dj <= cap) {
                return Err(format!("the {order}-gram discount D{} = {dj:.4} is outside [0, {cap}]", j + 1));
            }
        }
        Ok(d)
    })();
    match (computed, fallback) {
        (Ok(d), _) => Ok(d),
        (Err(_), Some(f)) => Ok(if modified { f } else { [f[0]; 3] }),
        (Err(why), None) => Err(Error::input(format!(
            "Kneser-Ney discounts cannot be estimated: {why} (too little or too repetitive text); train on more text, lower --order, or pass --discount-fallback"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discounts_follow_chen_goodman_26() {
        // n = 10, 5, 3, 2: Y = 10/20 = 0.5; D1 = 1 − 2·0.5·5/10 = 0.5; D2 = 2 − 3·0.5·3/5 = 1.1;
        // D3+ = 3 − 4·0.5·2/3 = 1.6667.
        let d = discounts([10, 5, 3, 2], true, 2, None).unwrap();
        assert!((d[0] - 0.5).abs() < 1e-12 && (d[1] - 1.1).abs() < 1e-12 && (d[2] - 5.0 / 3.0).abs() < 1e-12, "{d:?}");
        assert_eq!(discounts([10, 5, 0, 0], false, 2, None).unwrap(), [0.5; 3]);
        assert_eq!(discounts([10, 5, 3, 0], true, 2, None).unwrap()[2], 3.0);
        let e = discounts([10, 5, 0, 2], true, 3, None).unwrap_err().to_string();
        assert!(e.contains("3-gram was seen exactly 3") && e.contains("--discount-fallback"), "{e}");
        assert_eq!(discounts([10, 5, 0, 2], true, 3, Some(FALLBACK)).unwrap(), FALLBACK);
    }

    #[test]
    fn smoothing_parse_rejects_bad_k() {
        assert_eq!(Smoothing::parse("add-k", Some("0.5"), 3).unwrap(), Smoothing::AddK { k: 0.5 });
        assert_eq!(Smoothing::parse("interpolated-add-k", Some("1,2"), 2).unwrap(), Smoothing::InterpolatedAddK { ks: vec![1.0, 2.0] });
        for bad in ["0", "-1", "x", "nan"] {
            assert!(Smoothing::parse("add-k", Some(bad), 3).unwrap_err().to_string().contains("--k"));
        }
        assert!(Smoothing::parse("kneser-ney", Some("1"), 3).is_err());
        assert!(Smoothing::parse("witten-bell", None, 3).unwrap_err().to_string().contains("modified-kneser-ney"));
    }
}
