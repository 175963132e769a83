//! The passage shown with a hit: the window of a document's words that holds the most distinct
//! query terms (then the most matches, then the earliest), with the byte spans of the matches.

use crate::analyze::terms;
use std::collections::HashSet;

/// Words in a snippet window.
pub const WINDOW_WORDS: usize = 30;

/// A passage of a document with the query terms located in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snippet {
    /// The passage, line breaks and tabs turned into spaces (byte for byte, so spans hold).
    pub text: String,
    /// Where the passage starts in the document, in bytes.
    pub start: usize,
    /// Byte ranges of the matched words in `text`.
    pub spans: Vec<(usize, usize)>,
    /// Whether text was cut off before / after the passage.
    pub cut_before: bool,
    pub cut_after: bool,
}

/// The best passage of `doc` for the (lowercased, analysed) `query_terms`.
pub fn snippet(doc: &str, query_terms: &HashSet<&str>) -> Snippet {
    let words = terms(doc);
    if words.is_empty() {
        return Snippet { text: String::new(), start: 0, spans: Vec::new(), cut_before: false, cut_after: !doc.trim().is_empty() };
    }
    let hit: Vec<bool> = words.iter().map(|w| query_terms.contains(w.text.as_str())).collect();
    let win = WINDOW_WORDS.min(words.len());
    let mut best = (0usize, 0usize, 0usize); // (distinct, matches, start word)
    for s in 0..=words.len() - win {
        if s > 0 && !hit[s] {
            continue; // the best window starts at a match (or at the beginning)
        }
        let distinct: HashSet<&str> = (s..s + win).filter(|&i| hit[i]).map(|i| words[i].text.as_str()).collect();
        let matches = (s..s + win).filter(|&i| hit[i]).count();
        if (distinct.len(), matches) > (best.0, best.1) {
            best = (distinct.len(), matches, s);
        }
    }
    // Start a few words before the first match, so the reader sees its context.
    let first = best.2.saturating_sub(if best.1 > 0 && best.2 > 0 { 4 } else { 0 });
    let last = (first + win).min(words.len()) - 1;
    let (from, to) = (if first == 0 { 0 } else { words[first].start }, if last + 1 == words.len() { doc.trim_end().len().max(words[last].end) } else { words[last].end });
    let text: String = doc[from..to].chars().map(|c| if c == '\n' || c == '\r' || c == '\t' { ' ' } else { c }).collect();
    let spans = (first..=last).filter(|&i| hit[i]).map(|i| (words[i].start - from, words[i].end - from)).collect();
    Snippet { text, start: from, spans, cut_before: from > 0 && !doc[..from].trim().is_empty(), cut_after: !doc[to..].trim().is_empty() }
}

impl Snippet {
    /// The passage with each match wrapped in `open` … `close` (e.g. « », or ANSI bold), and
    /// "…" where the document was cut.
    pub fn marked(&self, open: &str, close: &str) -> String {
        let mut out = String::new();
        if self.cut_before {
            out.push('…');
        }
        let mut at = 0;
        for &(s, e) in &self.spans {
            out.push_str(&self.text[at..s]);
            out.push_str(open);
            out.push_str(&self.text[s..e]);
            out.push_str(close);
            at = e;
        }
        out.push_str(&self.text[at..]);
        if self.cut_after {
            out.push('…');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_finds_the_densest_window_and_marks_it() {
        let filler = "lorem ipsum dolor sit amet ".repeat(20);
        let doc = format!("The cat came first.\n{filler}Then the Cat\tand the dog slept. {filler}");
        let q: HashSet<&str> = ["cat", "dog"].into_iter().collect();
        let s = snippet(&doc, &q);
        assert_eq!(s.spans.len(), 2, "{s:?}");
        assert_eq!(&s.text[s.spans[0].0..s.spans[0].1], "Cat");
        assert!(s.text.contains("Cat and the dog"), "tabs become spaces: {}", s.text);
        assert!(s.cut_before && s.cut_after);
        let m = s.marked("«", "»");
        assert!(m.starts_with('…') && m.contains("«Cat» and the «dog» slept"), "{m}");
    }

    #[test]
    fn snippet_works_on_chinese() {
        let q: HashSet<&str> = ["模型"].into_iter().collect();
        let s = snippet("我们训练一个语言模型。", &q);
        assert_eq!(s.marked("[", "]"), "我们训练一个语言[模型]。");
    }
}
