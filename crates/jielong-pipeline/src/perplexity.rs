//! CCNet's perplexity filter (Wenzek et al. 2020): documents are scored by an n-gram model
//! trained on text of the quality wanted (CCNet used Wikipedia), and those the model finds
//! too surprising are removed. The model is any `jielong ngram train` output (binary or
//! ARPA); the document is cut into sentences and units exactly as that model was trained.

use crate::doc::Doc;
use crate::stage::{Counters, DocStage, Verdict};
use jielong_ngram::units::{SentenceMode, Splitter, UnitKind};
use jielong_ngram::{NgramModel, Score};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerplexityConfig {
    /// The n-gram model (`jielong ngram train --out MODEL`).
    pub model: PathBuf,
    /// Documents with a higher perplexity (OOVs included) are removed.
    pub max_perplexity: f64,
    /// Documents with fewer scored units are kept without judging (too short to tell).
    #[serde(default = "default_min_units")]
    pub min_units: u64,
}

fn default_min_units() -> u64 {
    10
}

pub struct Perplexity {
    model: NgramModel,
    splitter: Splitter,
    sentences: SentenceMode,
    max_perplexity: f64,
    min_units: u64,
}

impl Perplexity {
    /// Load the model; `base` resolves a relative model path (the pipeline TOML's folder).
    pub fn new(cfg: &PerplexityConfig, base: &Path) -> Result<Self, String> {
        if !(cfg.max_perplexity.is_finite() && cfg.max_perplexity > 1.0) {
            return Err(format!("max_perplexity = {} must be a number above 1", cfg.max_perplexity));
        }
        let path = if cfg.model.is_absolute() { cfg.model.clone() } else { base.join(&cfg.model) };
        let model = jielong_ngram::load(&path).map_err(|e| format!("model {}: {e}", path.display()))?;
        let meta = model.meta();
        let kind = UnitKind::parse(&meta.units).map_err(|e| e.to_string())?;
        let tokenizer = meta.tokenizer.as_ref().map(PathBuf::from);
        let splitter = Splitter::new(kind, tokenizer.as_deref()).map_err(|e| format!("model {}: {e}", path.display()))?;
        let sentences = SentenceMode::parse(&meta.sentences).map_err(|e| e.to_string())?;
        Ok(Perplexity { model, splitter, sentences, max_perplexity: cfg.max_perplexity, min_units: cfg.min_units })
    }

    /// The document's perplexity and the number of units scored.
    pub fn score(&self, text: &str) -> (f64, u64) {
        let mut score = Score::default();
        for s in self.sentences.split(text) {
            if let Ok(ids) = self.splitter.ids(s, self.model.vocab()) {
                score.add_sentence(&self.model, &ids);
            }
        }
        if score.tokens == 0 {
            return (f64::NAN, 0);
        }
        (score.perplexity(), score.tokens)
    }
}

impl DocStage for Perplexity {
    fn name(&self) -> &'static str {
        "perplexity"
    }
    fn apply(&self, doc: &mut Doc, _: &mut Counters) -> Verdict {
        let (ppl, n) = self.score(&doc.text);
        if n < self.min_units {
            return Verdict::Keep;
        }
        doc.perplexity = Some((ppl * 100.0).round() / 100.0);
        if ppl > self.max_perplexity {
            Verdict::Drop("perplexity_too_high")
        } else {
            Verdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unigram model written by hand: p(river) = 0.25, p(</s>) = 0.5, p(<unk>) = 0.1.
    const ARPA: &str = "\\data\\\nngram 1=5\n\n\\1-grams:\n-1.0\t<unk>\n-99\t<s>\n-0.30103\t</s>\n-0.60206\triver\n-1.0\tmill\n\n\\end\\\n";

    #[test]
    fn perplexity_by_hand_and_the_threshold() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.arpa"), ARPA).unwrap();
        let cfg = PerplexityConfig { model: "m.arpa".into(), max_perplexity: 4.0, min_units: 1 };
        let stage = Perplexity::new(&cfg, dir.path()).unwrap();
        // "river river" + </s>: log10 p = 2·(−0.60206) − 0.30103 = −1.50515 over 3 units,
        // perplexity 10^(1.50515 / 3) = 3.1748.
        let (ppl, n) = stage.score("river river");
        assert_eq!(n, 3);
        assert!((ppl - 3.1748).abs() < 1e-3, "{ppl}");
        let mut c = Counters::default();
        let mut keep = Doc::new(0, "t", "river river");
        assert_eq!(stage.apply(&mut keep, &mut c), Verdict::Keep);
        assert_eq!(keep.perplexity, Some(3.17));
        // Two unknown words: (−1 − 1 − 0.30103) / 3 → perplexity 5.85 > 4.
        let mut drop = Doc::new(1, "t", "zzz qqq");
        assert_eq!(stage.apply(&mut drop, &mut c), Verdict::Drop("perplexity_too_high"));
        assert!(Perplexity::new(&PerplexityConfig { max_perplexity: 0.5, ..cfg.clone() }, dir.path()).is_err());
        assert!(Perplexity::new(&PerplexityConfig { model: "missing.arpa".into(), ..cfg }, dir.path()).is_err());
    }
}
