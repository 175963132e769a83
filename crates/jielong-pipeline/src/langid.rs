//! Language identification with `whatlang` (trigram profiles for 70 languages, script
//! detection for the rest): each document gets a language code and a confidence in [0, 1],
//! and documents outside the keep-list or below the confidence threshold are removed.
//!
//! Only the first `max_chars` characters are read: a language shows in a few sentences, and a
//! cap keeps the cost per document flat.

use crate::doc::Doc;
use crate::gopher::check_fraction;
use crate::stage::{Counters, DocStage, Verdict};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LangIdConfig {
    /// Languages to keep (ISO 639-1 like "en", "zh", or ISO 639-3 like "cmn"); empty keeps
    /// every language and only labels documents.
    pub languages: Vec<String>,
    /// Minimum confidence (datatrove's fastText filter uses 0.65).
    pub min_score: f64,
    pub max_chars: usize,
}

impl Default for LangIdConfig {
    fn default() -> Self {
        LangIdConfig { languages: vec!["en".into(), "zh".into()], min_score: 0.65, max_chars: 4000 }
    }
}

/// ISO 639-3 (whatlang's codes) to ISO 639-1 for the languages that have one.
const TWO_LETTER: &[(&str, &str)] = &[
    ("eng", "en"), ("cmn", "zh"), ("jpn", "ja"), ("kor", "ko"), ("fra", "fr"), ("deu", "de"), ("spa", "es"), ("por", "pt"),
    ("ita", "it"), ("rus", "ru"), ("ukr", "uk"), ("pol", "pl"), ("nld", "nl"), ("swe", "sv"), ("dan", "da"), ("nob", "nb"),
    ("fin", "fi"), ("ces", "cs"), ("slk", "sk"), ("hun", "hu"), ("ron", "ro"), ("bul", "bg"), ("ell", "el"), ("tur", "tr"),
    ("ara", "ar"), ("heb", "he"), ("pes", "fa"), ("hin", "hi"), ("ben", "bn"), ("urd", "ur"), ("tha", "th"), ("vie", "vi"),
    ("ind", "id"), ("tgl", "tl"), ("epo", "eo"), ("lat", "la"), ("hrv", "hr"), ("srp", "sr"), ("slv", "sl"), ("lit", "lt"),
    ("lav", "lv"), ("est", "et"), ("cat", "ca"), ("afr", "af"), ("tam", "ta"), ("tel", "te"), ("mar", "mr"), ("guj", "gu"),
];

/// The code jielong reports: ISO 639-1 where there is one, else whatlang's ISO 639-3.
pub fn short_code(iso3: &str) -> &str {
    TWO_LETTER.iter().find(|(a, _)| *a == iso3).map(|(_, b)| *b).unwrap_or(iso3)
}

/// The language and confidence of `text`, or `None` when nothing can be said (no letters).
pub fn identify(text: &str, max_chars: usize) -> Option<(String, f64)> {
    let end = text.char_indices().nth(max_chars).map_or(text.len(), |(i, _)| i);
    let info = whatlang::detect(&text[..end])?;
    Some((short_code(info.lang().code()).to_string(), info.confidence()))
}

#[derive(Debug, Clone)]
pub struct LangId {
    cfg: LangIdConfig,
}

impl LangId {
    pub fn new(cfg: LangIdConfig) -> Result<Self, String> {
        check_fraction("min_score", cfg.min_score, 1.0)?;
        if cfg.max_chars == 0 {
            return Err("max_chars must be at least 1".into());
        }
        let known: Vec<&str> = whatlang::Lang::all().iter().map(|l| l.code()).collect();
        for l in &cfg.languages {
            if !known.contains(&l.as_str()) && !TWO_LETTER.iter().any(|(_, b)| b == l) {
                return Err(format!("language `{l}` is not one whatlang knows; use an ISO 639-1 code such as en or zh"));
            }
        }
        let languages = cfg.languages.iter().map(|l| short_code(l).to_string()).collect();
        Ok(LangId { cfg: LangIdConfig { languages, ..cfg } })
    }
}

impl DocStage for LangId {
    fn name(&self) -> &'static str {
        "language"
    }
    fn apply(&self, doc: &mut Doc, counters: &mut Counters) -> Verdict {
        let Some((lang, score)) = identify(&doc.text, self.cfg.max_chars) else {
            return Verdict::Drop("no_language");
        };
        counters.add(&format!("lang:{lang}"), 1);
        doc.lang = Some(lang.clone());
        doc.lang_score = Some((score * 1e4).round() / 1e4);
        if !self.cfg.languages.is_empty() && !self.cfg.languages.contains(&lang) {
            return Verdict::Drop("language_not_kept");
        }
        if score < self.cfg.min_score {
            return Verdict::Drop("language_score_low");
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn langid_labels_english_and_chinese_and_drops_others() {
        let stage = LangId::new(LangIdConfig::default()).unwrap();
        let mut c = Counters::default();
        let mut en = Doc::new(0, "t", "The river carried timber down to the mills, and every spring the town grew a little larger.");
        assert_eq!(stage.apply(&mut en, &mut c), Verdict::Keep);
        assert_eq!(en.lang.as_deref(), Some("en"));
        let mut zh = Doc::new(1, "t", "春天来了，河水带着木材流向下游的工厂，小城一年比一年热闹。");
        assert_eq!(stage.apply(&mut zh, &mut c), Verdict::Keep);
        assert_eq!(zh.lang.as_deref(), Some("zh"));
        let mut de = Doc::new(2, "t", "Der Fluss trug das Holz zu den Mühlen, und jedes Frühjahr wuchs die Stadt ein wenig.");
        assert_eq!(stage.apply(&mut de, &mut c), Verdict::Drop("language_not_kept"));
        assert_eq!(de.lang.as_deref(), Some("de"));
        assert_eq!(stage.apply(&mut Doc::new(3, "t", "12345 !!! ..."), &mut c), Verdict::Drop("no_language"));
        assert_eq!(c.0["lang:en"], 1);
    }

    #[test]
    fn langid_rejects_unknown_codes_and_bad_scores() {
        assert!(LangId::new(LangIdConfig { languages: vec!["xx".into()], ..Default::default() }).is_err());
        assert!(LangId::new(LangIdConfig { min_score: 1.5, ..Default::default() }).is_err());
        assert!(LangId::new(LangIdConfig { languages: vec!["cmn".into()], ..Default::default() }).is_ok());
    }
}
