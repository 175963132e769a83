//! FineWeb's extra rules (Penedo et al. 2024, section 3.3), as datatrove's
//! `FineWebQualityFilter` applies them: too few lines ending in punctuation, too many short
//! lines, characters in duplicated lines, and newline-per-word (list-like pages).

use crate::doc::Doc;
use crate::gopher::check_fraction;
use crate::stage::{Counters, DocStage, Verdict};
use crate::words::{char_len, ends_with_terminal_punct, tokens};
use serde::Deserialize;
use std::collections::HashSet;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FineWeb {
    /// Fraction of lines ending in terminal punctuation below this: `line_punct_ratio`.
    pub line_punct_thr: f64,
    /// Do not apply the rule above to documents with no such line at all.
    pub line_punct_exclude_zero: bool,
    /// Fraction of lines of at most `short_line_length` characters at or above this: `short_line_ratio`.
    pub short_line_thr: f64,
    pub short_line_length: usize,
    /// Characters in duplicated lines over all characters (newlines left out) at or above
    /// this: `char_dup_ratio`.
    pub char_duplicates_ratio: f64,
    /// Newlines per word above this: `list_ratio`.
    pub new_line_ratio: f64,
}

impl Default for FineWeb {
    fn default() -> Self {
        FineWeb { line_punct_thr: 0.12, line_punct_exclude_zero: false, short_line_thr: 0.67, short_line_length: 30, char_duplicates_ratio: 0.01, new_line_ratio: 0.3 }
    }
}

impl FineWeb {
    pub fn validate(&self) -> Result<(), String> {
        check_fraction("line_punct_thr", self.line_punct_thr, 1.0)?;
        check_fraction("short_line_thr", self.short_line_thr, 1.0)?;
        check_fraction("char_duplicates_ratio", self.char_duplicates_ratio, 1.0)?;
        check_fraction("new_line_ratio", self.new_line_ratio, 100.0)
    }

    pub fn check(&self, doc: &Doc) -> Option<&'static str> {
        let text = doc.text.as_str();
        let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return Some("empty");
        }
        let n = lines.len() as f64;
        let punct = lines.iter().filter(|l| ends_with_terminal_punct(l)).count() as f64 / n;
        if punct < self.line_punct_thr && !(punct == 0.0 && self.line_punct_exclude_zero) {
            return Some("line_punct_ratio");
        }
        let short = lines.iter().filter(|l| char_len(l) <= self.short_line_length).count() as f64 / n;
        if short >= self.short_line_thr {
            return Some("short_line_ratio");
        }
        let mut seen = HashSet::new();
        let dup_chars: usize = lines.iter().filter(|l| !seen.insert(**l)).map(|l| char_len(l)).sum();
        let total = text.chars().filter(|&c| c != '\n').count().max(1);
        if dup_chars as f64 / total as f64 >= self.char_duplicates_ratio {
            return Some("char_dup_ratio");
        }
        let words = tokens(text).len().max(1);
        if text.matches('\n').count() as f64 / words as f64 > self.new_line_ratio {
            return Some("list_ratio");
        }
        None
    }
}

impl DocStage for FineWeb {
    fn name(&self) -> &'static str {
        "fineweb"
    }
    fn apply(&self, doc: &mut Doc, _: &mut Counters) -> Verdict {
        self.check(doc).map_or(Verdict::Keep, Verdict::Drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Option<&'static str> {
        FineWeb::default().check(&Doc::new(0, "t", text))
    }

    const LONG: &str = "This line is long enough to count as a real line of prose.";

    #[test]
    fn fineweb_punctuation_ratio_threshold() {
        // 1 of 8 lines ends in punctuation: 0.125 ≥ 0.12 kept; 1 of 9: 0.111 removed.
        let unpunct = "This line is long enough but it has no final stop mark";
        let distinct: Vec<String> = (0..7).map(|i| format!("{unpunct} number {i}")).collect();
        let mut lines: Vec<String> = vec![LONG.to_string()];
        lines.extend(distinct.iter().cloned());
        assert_eq!(check(&lines.join("\n")), None);
        lines.push(format!("{unpunct} number 8"));
        assert_eq!(check(&lines.join("\n")), Some("line_punct_ratio"));
    }

    #[test]
    fn fineweb_short_lines_at_the_threshold() {
        // Lines of exactly 30 characters count as short, 31 do not. Two short lines of three
        // (0.667) stay under 0.67; three of four (0.75) do not.
        let short: Vec<String> = (0..3).map(|i| format!("Short line number {i} is here...")).collect();
        let long31: Vec<String> = (0..3).map(|i| format!("Short line number {i} is here....")).collect();
        assert!(short.iter().all(|l| l.chars().count() == 30) && long31.iter().all(|l| l.chars().count() == 31));
        assert_eq!(check(&format!("{}\n{}\n{LONG}", short[0], short[1])), None);
        assert_eq!(check(&format!("{}\n{LONG}", short.join("\n"))), Some("short_line_ratio"));
        assert_eq!(check(&format!("{}\n{LONG}", long31.join("\n"))), None);
    }

    #[test]
    fn fineweb_duplicated_characters_at_the_threshold() {
        // n distinct 40-character lines and "Yes." twice: 4 duplicated characters of 40n + 8.
        // n = 10: 4/408 < 0.01, kept; n = 9: 4/368 ≥ 0.01, removed.
        let lines = |n: usize| {
            let mut v: Vec<String> = (0..n).map(|i| format!("Line {i:03} is one sentence of forty chars.")).collect();
            assert!(v.iter().all(|l| l.chars().count() == 40));
            v.push("Yes.".into());
            v.push("Yes.".into());
            v.join("\n")
        };
        assert_eq!(check(&lines(10)), None);
        assert_eq!(check(&lines(9)), Some("char_dup_ratio"));
    }

    #[test]
    fn fineweb_short_lines_duplicates_and_lists() {
        let short = "Short line.\nAnother one.\nTiny.\n".to_string() + LONG;
        assert_eq!(check(&short), Some("short_line_ratio"));
        let dup = format!("{LONG}\nA second, different and equally long sentence is here.\n{LONG}");
        assert_eq!(check(&dup), Some("char_dup_ratio"));
        let ok = format!("{LONG}\nA second, different and equally long sentence is here.");
        assert_eq!(check(&ok), None);
        assert_eq!(check("\n \n"), Some("empty"));
        // Lines of two long words and a stop: 3 tokens each. 10 lines: 9 newlines / 30 tokens
        // = 0.3, kept; 11 lines: 10 / 33 > 0.3, a list.
        let list = |n: usize| (0..n).map(|i| format!("Supercalifragilisticexpialidocious antidisestablishmentarianism{i}.")).collect::<Vec<_>>().join("\n");
        assert_eq!(check(&list(10)), None);
        assert_eq!(check(&list(11)), Some("list_ratio"));
    }
}
