//! Gopher's quality and repetition rules (Rae et al. 2021, "Scaling Language Models", appendix
//! A), with the thresholds and rule names datatrove uses, so reports line up with its.
//!
//! Chinese and Japanese text is measured in characters where the English rules count words
//! (each ideograph is a token, see [`crate::words`]); the mean-word-length rule does not apply
//! to it, and its stop words are the commonest function characters.

use crate::doc::Doc;
use crate::stage::{Counters, DocStage, Verdict};
use crate::words::{char_len, is_symbol, tokens};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

/// Gopher's quality rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherQuality {
    /// Fewer words (punctuation not counted) than this: `gopher_short_doc`.
    pub min_doc_words: usize,
    pub max_doc_words: usize,
    pub min_avg_word_length: f64,
    pub max_avg_word_length: f64,
    /// `#` per word above this: `gopher_too_many_hashes`; `...`/`…` per word: `gopher_too_many_ellipsis`.
    pub max_symbol_word_ratio: f64,
    /// Lines starting with a bullet (• or -), as a fraction of lines.
    pub max_bullet_lines_ratio: f64,
    /// Lines ending with an ellipsis, as a fraction of lines.
    pub max_ellipsis_lines_ratio: f64,
    /// At least this fraction of words must contain a letter: `gopher_below_alpha_threshold`.
    pub max_non_alpha_words_ratio: f64,
    /// At least this many distinct stop words ("the", "be", "to", "of", "and", "that",
    /// "have", "with"; 的 了 是 在 和 有 不 这 for Chinese).
    pub min_stop_words: usize,
}

impl Default for GopherQuality {
    fn default() -> Self {
        GopherQuality {
            min_doc_words: 50,
            max_doc_words: 100_000,
            min_avg_word_length: 3.0,
            max_avg_word_length: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_lines_ratio: 0.9,
            max_ellipsis_lines_ratio: 0.3,
            max_non_alpha_words_ratio: 0.8,
            min_stop_words: 2,
        }
    }
}

const STOP_WORDS_EN: &[&str] = &["the", "be", "to", "of", "and", "that", "have", "with"];
const STOP_WORDS_ZH: &[&str] = &["的", "了", "是", "在", "和", "有", "不", "这"];

impl GopherQuality {
    pub fn validate(&self) -> Result<(), String> {
        check_fraction("max_symbol_word_ratio", self.max_symbol_word_ratio, 10.0)?;
        check_fraction("max_bullet_lines_ratio", self.max_bullet_lines_ratio, 1.0)?;
        check_fraction("max_ellipsis_lines_ratio", self.max_ellipsis_lines_ratio, 1.0)?;
        check_fraction("max_non_alpha_words_ratio", self.max_non_alpha_words_ratio, 1.0)?;
        if self.min_doc_words > self.max_doc_words {
            return Err(format!("min_doc_words ({}) is above max_doc_words ({})", self.min_doc_words, self.max_doc_words));
        }
        if !(self.min_avg_word_length >= 0.0 && self.min_avg_word_length <= self.max_avg_word_length) {
            return Err("min_avg_word_length must be ≥ 0 and ≤ max_avg_word_length".into());
        }
        Ok(())
    }

    /// The rule that removes `doc`, if one does.
    pub fn check(&self, doc: &Doc) -> Option<&'static str> {
        let text = &doc.text;
        let cjk = doc.is_cjk();
        let words = tokens(text);
        let n_words = words.len();
        let non_symbol: Vec<&str> = words.iter().copied().filter(|w| !is_symbol(w)).collect();
        let n = non_symbol.len();
        if n < self.min_doc_words {
            return Some("gopher_short_doc");
        }
        if n > self.max_doc_words {
            return Some("gopher_long_doc");
        }
        if !cjk {
            let avg = non_symbol.iter().map(|w| char_len(w)).sum::<usize>() as f64 / n as f64;
            if avg < self.min_avg_word_length {
                return Some("gopher_below_avg_threshold");
            }
            if avg > self.max_avg_word_length {
                return Some("gopher_above_avg_threshold");
            }
        }
        let nw = n_words.max(1) as f64;
        if text.matches('#').count() as f64 / nw > self.max_symbol_word_ratio {
            return Some("gopher_too_many_hashes");
        }
        if (text.matches("...").count() + text.matches('…').count()) as f64 / nw > self.max_symbol_word_ratio {
            return Some("gopher_too_many_ellipsis");
        }
        let lines: Vec<&str> = text.lines().collect();
        let n_lines = lines.len().max(1) as f64;
        let bullets = lines.iter().filter(|l| { let s = l.trim_start(); s.starts_with('•') || s.starts_with('-') }).count();
        if bullets as f64 / n_lines > self.max_bullet_lines_ratio {
            return Some("gopher_too_many_bullets");
        }
        let ellipsis = lines.iter().filter(|l| { let s = l.trim_end(); s.ends_with("...") || s.ends_with('…') }).count();
        if ellipsis as f64 / n_lines > self.max_ellipsis_lines_ratio {
            return Some("gopher_too_many_end_ellipsis");
        }
        let alpha = words.iter().filter(|w| w.chars().any(char::is_alphabetic)).count();
        if (alpha as f64) / nw < self.max_non_alpha_words_ratio {
            return Some("gopher_below_alpha_threshold");
        }
        let stop = if cjk { STOP_WORDS_ZH } else { STOP_WORDS_EN };
        let present: HashSet<&str> = words.iter().copied().filter(|w| stop.contains(w)).collect();
        if present.len() < self.min_stop_words {
            return Some("gopher_enough_stop_words");
        }
        None
    }
}

impl DocStage for GopherQuality {
    fn name(&self) -> &'static str {
        "gopher_quality"
    }
    fn apply(&self, doc: &mut Doc, _: &mut Counters) -> Verdict {
        self.check(doc).map_or(Verdict::Keep, Verdict::Drop)
    }
}

/// Gopher's repetition rules: duplicated lines and paragraphs, the most frequent n-grams, and
/// characters inside duplicated n-grams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GopherRepetition {
    pub dup_line_frac: f64,
    pub dup_para_frac: f64,
    pub dup_line_char_frac: f64,
    pub dup_para_char_frac: f64,
    /// (n, max fraction of characters in the most frequent n-gram), n = 2, 3, 4.
    pub top_n_grams: Vec<(usize, f64)>,
    /// (n, max fraction of characters in repeated n-grams), n = 5 … 10.
    pub dup_n_grams: Vec<(usize, f64)>,
}

impl Default for GopherRepetition {
    fn default() -> Self {
        GopherRepetition {
            dup_line_frac: 0.3,
            dup_para_frac: 0.3,
            dup_line_char_frac: 0.2,
            dup_para_char_frac: 0.2,
            top_n_grams: vec![(2, 0.2), (3, 0.18), (4, 0.16)],
            dup_n_grams: vec![(5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10)],
        }
    }
}

/// How many elements repeat one seen before, and their total length in characters.
fn duplicates<'a>(items: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let mut seen = HashSet::new();
    let (mut n, mut chars) = (0, 0);
    for x in items {
        if !seen.insert(x) {
            n += 1;
            chars += char_len(x);
        }
    }
    (n, chars)
}

/// Characters covered by the most frequent n-gram, times its count (datatrove's
/// `find_top_duplicate`: n-grams of words joined by spaces).
fn top_ngram_chars(words: &[&str], n: usize) -> usize {
    if words.len() < n {
        return 0;
    }
    let mut counts: HashMap<&[&str], usize> = HashMap::new();
    let mut best: (usize, Option<&[&str]>) = (0, None);
    for g in words.windows(n) {
        let c = counts.entry(g).or_insert(0);
        *c += 1;
        // Ties go to the n-gram seen first, as Python's Counter.most_common does.
        if *c > best.0 {
            best = (*c, Some(g));
        }
    }
    match best {
        (c, Some(g)) => c * (g.iter().map(|w| char_len(w)).sum::<usize>() + n - 1),
        _ => 0,
    }
}

/// Characters inside repeated n-grams, counting each occurrence after the first and stepping
/// over it (datatrove's `find_all_duplicate`: n-grams of words joined without spaces).
fn repeated_ngram_chars(words: &[&str], n: usize) -> usize {
    let mut seen: HashSet<&[&str]> = HashSet::new();
    let (mut chars, mut i) = (0, 0);
    while i + n <= words.len() {
        let g = &words[i..i + n];
        if seen.contains(g) {
            chars += g.iter().map(|w| char_len(w)).sum::<usize>();
            i += n;
        } else {
            seen.insert(g);
            i += 1;
        }
    }
    chars
}

impl GopherRepetition {
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in [("dup_line_frac", self.dup_line_frac), ("dup_para_frac", self.dup_para_frac), ("dup_line_char_frac", self.dup_line_char_frac), ("dup_para_char_frac", self.dup_para_char_frac)] {
            check_fraction(k, v, 1.0)?;
        }
        for &(n, f) in self.top_n_grams.iter().chain(&self.dup_n_grams) {
            if n == 0 || n > 50 {
                return Err(format!("n-gram size {n} must be between 1 and 50"));
            }
            check_fraction("n-gram fraction", f, 1.0)?;
        }
        Ok(())
    }

    pub fn check(&self, doc: &Doc) -> Option<&'static str> {
        let text = doc.text.as_str();
        let total = char_len(text).max(1) as f64;
        let paragraphs: Vec<&str> = split_nonempty(text, "\n\n");
        let (n, chars) = duplicates(paragraphs.iter().copied());
        if n as f64 / paragraphs.len().max(1) as f64 > self.dup_para_frac {
            return Some("dup_para_frac");
        }
        if chars as f64 / total > self.dup_para_char_frac {
            return Some("dup_para_char_frac");
        }
        let lines: Vec<&str> = text.split('\n').map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
        let (n, chars) = duplicates(lines.iter().copied());
        if n as f64 / lines.len().max(1) as f64 > self.dup_line_frac {
            return Some("dup_line_frac");
        }
        if chars as f64 / total > self.dup_line_char_frac {
            return Some("dup_line_char_frac");
        }
        // Every token, punctuation included, as datatrove n-grams its word tokenizer's output.
        let words: Vec<&str> = tokens(text);
        for &(n, frac) in &self.top_n_grams {
            if top_ngram_chars(&words, n) as f64 / total > frac {
                return Some(top_rule(n));
            }
        }
        for &(n, frac) in &self.dup_n_grams {
            if repeated_ngram_chars(&words, n) as f64 / total > frac {
                return Some(dup_rule(n));
            }
        }
        None
    }
}

fn split_nonempty<'a>(text: &'a str, sep: &str) -> Vec<&'a str> {
    text.split(sep).map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn top_rule(n: usize) -> &'static str {
    match n {
        2 => "top_2_gram",
        3 => "top_3_gram",
        4 => "top_4_gram",
        _ => "top_n_gram",
    }
}

fn dup_rule(n: usize) -> &'static str {
    match n {
        5 => "duplicated_5_n_grams",
        6 => "duplicated_6_n_grams",
        7 => "duplicated_7_n_grams",
        8 => "duplicated_8_n_grams",
        9 => "duplicated_9_n_grams",
        10 => "duplicated_10_n_grams",
        _ => "duplicated_n_grams",
    }
}

impl DocStage for GopherRepetition {
    fn name(&self) -> &'static str {
        "gopher_repetition"
    }
    fn apply(&self, doc: &mut Doc, _: &mut Counters) -> Verdict {
        self.check(doc).map_or(Verdict::Keep, Verdict::Drop)
    }
}

/// A threshold that must lie in [0, max].
pub(crate) fn check_fraction(key: &str, v: f64, max: f64) -> Result<(), String> {
    if v.is_finite() && (0.0..=max).contains(&v) {
        Ok(())
    } else {
        Err(format!("{key} = {v} is out of range: it must be between 0 and {max}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain English paragraph of `n` words with stop words and ordinary word lengths.
    fn prose(n: usize) -> String {
        let base = ["the", "river", "carried", "timber", "to", "the", "mills", "of", "northern", "towns", "and", "that", "trade", "grew", "with", "every", "season"];
        let mut v = Vec::new();
        let mut i = 0;
        while v.len() < n {
            v.push(format!("{}{}", base[i % base.len()], if i >= base.len() { format!("{}", i / base.len()) } else { String::new() }));
            i += 1;
        }
        v.join(" ") + "."
    }

    #[test]
    fn gopher_quality_word_count_threshold_is_inclusive_at_min() {
        let q = GopherQuality::default();
        assert_eq!(q.check(&Doc::new(0, "t", prose(50))), None);
        assert_eq!(q.check(&Doc::new(0, "t", prose(49))), Some("gopher_short_doc"));
        let long = GopherQuality { max_doc_words: 60, ..Default::default() };
        assert_eq!(long.check(&Doc::new(0, "t", prose(61))), Some("gopher_long_doc"));
        assert_eq!(long.check(&Doc::new(0, "t", prose(60))), None);
    }

    #[test]
    fn gopher_quality_hash_and_ellipsis_ratios_fire_just_above_threshold() {
        let q = GopherQuality::default();
        // 100 tokens: 90 words + 10 '#' → ratio exactly 0.1 is kept; one more word of '#' fires.
        let words = prose(90);
        let text = format!("{} {}", words.trim_end_matches('.'), "# ".repeat(9));
        // tokens = 90 words + 9 hashes = 99 → 9/99 < 0.1 → kept.
        assert_eq!(q.check(&Doc::new(0, "t", text.clone())), None);
        let text = format!("{} {}", words.trim_end_matches('.'), "# ".repeat(11));
        // 11 / 101 > 0.1.
        assert_eq!(q.check(&Doc::new(0, "t", text)), Some("gopher_too_many_hashes"));
        let text = format!("{} {}", words.trim_end_matches('.'), "… ".repeat(11));
        assert_eq!(q.check(&Doc::new(0, "t", text)), Some("gopher_too_many_ellipsis"));
    }

    #[test]
    fn gopher_quality_average_word_length_and_stop_words() {
        let q = GopherQuality::default();
        let short = vec!["a b"; 40].join(" ") + " the of";
        assert_eq!(q.check(&Doc::new(0, "t", short)), Some("gopher_below_avg_threshold"));
        let long = vec!["internationalisation"; 60].join(" ");
        assert_eq!(q.check(&Doc::new(0, "t", long)), Some("gopher_above_avg_threshold"));
        let no_stop = vec!["river timber mills"; 20].join(" ");
        assert_eq!(q.check(&Doc::new(0, "t", no_stop)), Some("gopher_enough_stop_words"));
        let one_stop = vec!["river timber the"; 20].join(" ");
        assert_eq!(q.check(&Doc::new(0, "t", one_stop)), Some("gopher_enough_stop_words"));
    }

    #[test]
    fn gopher_quality_bullets_and_alpha_ratio() {
        let q = GopherQuality { min_doc_words: 1, ..Default::default() };
        // 10 lines, all bullets: 1.0 > 0.9; 9 of 10: exactly 0.9 is kept.
        let line = "- the river and that mill with timber";
        let all: Vec<&str> = vec![line; 10];
        assert_eq!(q.check(&Doc::new(0, "t", all.join("\n"))), Some("gopher_too_many_bullets"));
        let mut nine = vec![line; 9];
        nine.push("the river and that mill with timber");
        assert_eq!(q.check(&Doc::new(0, "t", nine.join("\n"))), None);
        // 3 words with letters among 20: 0.15 < 0.8.
        let numbers = "the and that ".to_string() + &(100_000..100_017).map(|n| n.to_string()).collect::<Vec<_>>().join(" ");
        assert_eq!(q.check(&Doc::new(0, "t", numbers)), Some("gopher_below_alpha_threshold"));
        // 16 with letters among 20 = 0.8 exactly: kept.
        let enough = "the and that ".to_string() + &(0..13).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ") + " 100001 100002 100003 100004";
        assert_eq!(q.check(&Doc::new(0, "t", enough)), None);
    }

    #[test]
    fn gopher_quality_counts_chinese_in_characters() {
        let q = GopherQuality::default();
        // 50 ideographs with the stop characters 的 and 是: kept; 49: too short.
        let s: String = "我的家乡是一个美丽的小城市有山有水".chars().cycle().take(50).collect();
        assert_eq!(q.check(&Doc::new(0, "t", s.clone())), None);
        let s49: String = s.chars().take(49).collect();
        assert_eq!(q.check(&Doc::new(0, "t", s49)), Some("gopher_short_doc"));
    }

    #[test]
    fn gopher_repetition_duplicate_lines_threshold() {
        let r = GopherRepetition::default();
        // 10 distinct lines + 3 repeats: 3/13 = 0.23 ≤ 0.3 kept by the line-count rule, but
        // the characters rule (0.2) still looks: use short repeats.
        let mut lines: Vec<String> = (0..10).map(|i| (b'a'..b'i').map(|c| format!("w{i}{}", c as char)).collect::<Vec<_>>().join(" ")).collect();
        lines.extend(["ok".to_string(), "ok".to_string(), "ok".to_string()]);
        assert_eq!(r.check(&Doc::new(0, "t", lines.join("\n"))), None);
        // 4 repeats of "ok" → duplicates 3 of 14? first "ok" is not a duplicate: 3 dup / 14 lines.
        let mut many = lines.clone();
        many.extend(std::iter::repeat_n("ok".to_string(), 3));
        // 10 distinct + 6 "ok": 5 duplicates / 16 lines = 0.3125 > 0.3.
        assert_eq!(r.check(&Doc::new(0, "t", many.join("\n"))), Some("dup_line_frac"));
    }

    /// Only the rule under test switched on: every other fraction at 1, no n-gram rules.
    fn only(set: impl FnOnce(&mut GopherRepetition)) -> GopherRepetition {
        let mut r = GopherRepetition { dup_line_frac: 1.0, dup_para_frac: 1.0, dup_line_char_frac: 1.0, dup_para_char_frac: 1.0, top_n_grams: vec![], dup_n_grams: vec![] };
        set(&mut r);
        r
    }

    fn rep(r: &GopherRepetition, text: &str) -> Option<&'static str> {
        r.check(&Doc::new(0, "t", text))
    }

    /// `n` distinct two-letter words: "ba bb bc …", then "ca cb …".
    fn filler(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{}{}", (b'b' + (i / 26) as u8) as char, (b'a' + (i % 26) as u8) as char)).collect()
    }

    #[test]
    fn gopher_repetition_duplicate_paragraphs_at_the_threshold() {
        let r = only(|r| r.dup_para_frac = 0.3);
        // 7 distinct paragraphs and 3 repeats: 3/10 = 0.3 is not above 0.3, kept; a fourth
        // repeat makes 4/11 = 0.36, removed.
        let mut paras: Vec<String> = (0..7).map(|i| format!("paragraph number {i}")).collect();
        paras.extend(std::iter::repeat_n("paragraph number 0".to_string(), 3));
        assert_eq!(rep(&r, &paras.join("\n\n")), None);
        paras.push("paragraph number 0".into());
        assert_eq!(rep(&r, &paras.join("\n\n")), Some("dup_para_frac"));
    }

    #[test]
    fn gopher_repetition_duplicate_characters_at_the_threshold() {
        // A 10-character paragraph twice around one of b characters: 10 duplicated characters
        // of 10 + 2 + b + 2 + 10. b = 26 gives exactly 0.2 (kept), b = 25 gives 0.204 (removed).
        let a = "aaaaaaaaaa";
        let para = |b: usize| format!("{a}\n\n{}\n\n{a}", "x".repeat(b));
        let r = only(|r| r.dup_para_char_frac = 0.2);
        assert_eq!(rep(&r, &para(26)), None);
        assert_eq!(rep(&r, &para(25)), Some("dup_para_char_frac"));
        // The same with lines: 10 + 1 + b + 1 + 10, b = 28 exactly 0.2, b = 27 above.
        let line = |b: usize| format!("{a}\n{}\n{a}", "x".repeat(b));
        let r = only(|r| r.dup_line_char_frac = 0.2);
        assert_eq!(rep(&r, &line(28)), None);
        assert_eq!(rep(&r, &line(27)), Some("dup_line_char_frac"));
    }

    #[test]
    fn gopher_repetition_top_2_gram_at_the_threshold() {
        // "xx yy xx yy" then k distinct two-letter words: the top 2-gram "xx yy" covers
        // 2 × 5 = 10 characters of 8 + 2k letters and 3 + k spaces. k = 13: 10/50 = 0.2,
        // kept; k = 12: 10/47, removed.
        let r = only(|r| r.top_n_grams = vec![(2, 0.2)]);
        let text = |k: usize| ["xx", "yy", "xx", "yy"].iter().map(|s| s.to_string()).chain(filler(k)).collect::<Vec<_>>().join(" ");
        assert_eq!(rep(&r, &text(13)), None);
        assert_eq!(rep(&r, &text(12)), Some("top_2_gram"));
    }

    #[test]
    fn gopher_repetition_duplicated_5_grams_around_the_threshold() {
        // Five words twice in a row, then k distinct words: the second copy is 10 repeated
        // characters of 2(10 + k) letters and 9 + k spaces. k = 13: 10/68 = 0.147, kept;
        // k = 12: 10/65 = 0.154, removed.
        let r = only(|r| r.dup_n_grams = vec![(5, 0.15)]);
        let five = ["pa", "pb", "pc", "pd", "pe"];
        let text = |k: usize| five.iter().chain(five.iter()).map(|s| s.to_string()).chain(filler(k)).collect::<Vec<_>>().join(" ");
        assert_eq!(rep(&r, &text(13)), None);
        assert_eq!(rep(&r, &text(12)), Some("duplicated_5_n_grams"));
    }

    #[test]
    fn repetition_helpers_match_hand_counts() {
        let w = ["a", "b", "a", "b", "a", "b"];
        // Most frequent 2-gram "a b" ×3, 3 characters with the space → 9.
        assert_eq!(top_ngram_chars(&w, 2), 9);
        // Repeated 2-grams: "ab" at 0 new, "ba" at 1 new, "ab" at 2 seen → +2, jump to 4: "ab" seen → +2.
        assert_eq!(repeated_ngram_chars(&w, 2), 4);
        assert_eq!(duplicates(["x", "yy", "x", "yy", "z"].into_iter()), (2, 3));
    }
}
