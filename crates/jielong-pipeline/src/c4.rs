//! C4's line rules (Raffel et al. 2020, section 2.2), as datatrove's `C4QualityFilter` applies
//! them: lines are dropped one by one (no terminal punctuation, fewer than three words, a word
//! over 1000 characters, "javascript", cookie/privacy-policy boilerplate, citation marks cut
//! out), and the whole document goes when it holds "lorem ipsum" or a curly bracket, or keeps
//! fewer than five sentences.
//!
//! Chinese lines end with 。！？ as well, and their words are counted in characters.

use crate::doc::Doc;
use crate::stage::{Counters, DocStage, Verdict};
use crate::words::tokens;
use regex::Regex;
use serde::Deserialize;
use std::sync::LazyLock;
use unicode_segmentation::UnicodeSegmentation;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C4Lines {
    pub remove_citations: bool,
    pub filter_no_terminal_punct: bool,
    /// Documents with fewer sentences left are removed (`too_few_sentences`); 0 turns it off.
    pub min_num_sentences: usize,
    pub min_words_per_line: usize,
    /// Lines with a longer word are dropped; 0 turns it off.
    pub max_word_length: usize,
    pub filter_lorem_ipsum: bool,
    pub filter_javascript: bool,
    pub filter_curly_bracket: bool,
    pub filter_policy: bool,
}

impl Default for C4Lines {
    fn default() -> Self {
        C4Lines {
            remove_citations: true,
            filter_no_terminal_punct: true,
            min_num_sentences: 5,
            min_words_per_line: 3,
            max_word_length: 1000,
            filter_lorem_ipsum: true,
            filter_javascript: true,
            filter_curly_bracket: true,
            filter_policy: true,
        }
    }
}

const POLICY: &[&str] = &["terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies"];
static CITATION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\[\d*]|\[edit]|\[citation needed]").expect("citation regex"));

fn ends_like_c4(line: &str) -> bool {
    let ends = line.ends_with(['.', '?', '!', '"', '\'', '。', '！', '？', '”', '」']);
    ends && !line.ends_with("...") && !line.ends_with('…')
}

impl C4Lines {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// The filtered text, or the rule that removes the whole document.
    pub fn filter(&self, text: &str, counters: &mut Counters) -> Result<String, &'static str> {
        let mut kept: Vec<String> = Vec::new();
        let mut sentences = 0usize;
        for raw in text.lines() {
            let mut line = raw.trim().to_string();
            if self.max_word_length > 0 && line.split_whitespace().any(|w| w.chars().count() > self.max_word_length) {
                counters.add("line-filter-too_long_word", 1);
                continue;
            }
            if self.remove_citations {
                line = CITATION.replace_all(&line, "").into_owned();
            }
            if self.filter_no_terminal_punct && !ends_like_c4(&line) {
                counters.add("line-filter-no_terminal_punc", 1);
                continue;
            }
            // Words as datatrove splits them (whitespace), or characters for CJK lines.
            let n_words = if crate::words::han_fraction(&line) > 0.3 { tokens(&line).len() } else { line.split_whitespace().count() };
            if n_words < self.min_words_per_line {
                counters.add("line-filter-too_few_words", 1);
                continue;
            }
            let lower = line.to_lowercase();
            if self.filter_lorem_ipsum && lower.contains("lorem ipsum") {
                return Err("lorem_ipsum");
            }
            if self.filter_javascript && lower.contains("javascript") {
                counters.add("line-filter-javascript", 1);
                continue;
            }
            if self.filter_curly_bracket && line.contains('{') {
                return Err("curly_bracket");
            }
            if self.filter_policy && POLICY.iter().any(|p| lower.contains(p)) {
                counters.add("line-filter-policy", 1);
                continue;
            }
            sentences += line.unicode_sentences().filter(|s| !s.trim().is_empty()).count();
            kept.push(line);
        }
        if sentences < self.min_num_sentences {
            return Err("too_few_sentences");
        }
        Ok(kept.join("\n").trim().to_string())
    }
}

impl DocStage for C4Lines {
    fn name(&self) -> &'static str {
        "c4"
    }
    fn apply(&self, doc: &mut Doc, counters: &mut Counters) -> Verdict {
        match self.filter(&doc.text, counters) {
            Ok(t) => {
                doc.text = t;
                Verdict::Keep
            }
            Err(rule) => Verdict::Drop(rule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Result<String, &'static str>, Counters) {
        let mut c = Counters::default();
        (C4Lines::default().filter(text, &mut c), c)
    }

    const FIVE: &str = "The first sentence is here.\nThe second one follows it.\nA third sentence comes next.\nThen there is a fourth.\nAnd the fifth closes it.";

    #[test]
    fn c4_keeps_five_sentences_and_drops_four() {
        assert_eq!(run(FIVE).0.unwrap(), FIVE);
        let four: Vec<&str> = FIVE.lines().take(4).collect();
        assert_eq!(run(&four.join("\n")).0, Err("too_few_sentences"));
    }

    #[test]
    fn c4_line_rules_drop_and_count_each_line() {
        let text = format!("{FIVE}\nno terminal punctuation here\nTwo words.\nEnable JavaScript to view this.\nThis site uses cookies to work.\nIt trails off...\nSee the table [1] for more [edit].");
        let (out, c) = run(&text);
        let out = out.unwrap();
        assert!(out.ends_with("See the table  for more ."), "{out}");
        assert_eq!(c.0["line-filter-no_terminal_punc"], 2);
        assert_eq!(c.0["line-filter-too_few_words"], 1);
        assert_eq!(c.0["line-filter-javascript"], 1);
        assert_eq!(c.0["line-filter-policy"], 1);
    }

    #[test]
    fn c4_word_length_and_words_per_line_at_their_thresholds() {
        // A word of exactly 1000 characters keeps its line; 1001 drops it.
        let line = |n: usize| format!("{FIVE}\nHere {} is long.", "w".repeat(n));
        let (out, c) = run(&line(1000));
        assert!(out.unwrap().ends_with("is long."));
        assert!(!c.0.contains_key("line-filter-too_long_word"));
        let (out, c) = run(&line(1001));
        assert_eq!(out.unwrap(), FIVE);
        assert_eq!(c.0["line-filter-too_long_word"], 1);
        // Three words are enough for a line, two are not.
        let (out, c) = run(&format!("{FIVE}\nThree words here."));
        assert!(out.unwrap().ends_with("Three words here."));
        assert!(!c.0.contains_key("line-filter-too_few_words"));
    }

    #[test]
    fn c4_whole_document_rules() {
        assert_eq!(run(&format!("{FIVE}\nLorem ipsum dolor sit amet.")).0, Err("lorem_ipsum"));
        assert_eq!(run(&format!("{FIVE}\nfunction f() {{ return 1; }}.")).0, Err("curly_bracket"));
    }

    #[test]
    fn c4_counts_chinese_sentences_and_characters() {
        let zh = "今天天气很好。我们去公园散步。\n公园里有很多人。孩子们在放风筝。\n老人在下棋。\n好。";
        // "好。" is one character and a mark: fewer than three words, dropped. The rest holds
        // five sentences (UAX #29 ends a sentence at 。), just enough.
        let (out, c) = run(zh);
        assert_eq!(out.unwrap(), "今天天气很好。我们去公园散步。\n公园里有很多人。孩子们在放风筝。\n老人在下棋。");
        assert_eq!(c.0["line-filter-too_few_words"], 1);
        assert_eq!(run("今天天气很好。我们去公园散步。\n公园里有很多人。孩子们在放风筝。").0, Err("too_few_sentences"));
    }
}
