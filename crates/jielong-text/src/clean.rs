//! Normalisation applied to every document before tokenizing: Unicode NFC (so "é" typed two
//! ways becomes one token sequence), LF line endings, and removal of control characters other
//! than newline and tab.

use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CleanStats {
    /// `\r\n` and lone `\r` turned into `\n`.
    pub line_endings_fixed: u64,
    /// Control characters dropped (C0/C1 controls other than `\n` and `\t`, and U+FEFF).
    pub control_chars_removed: u64,
}

impl CleanStats {
    pub fn add(&mut self, o: &CleanStats) {
        self.line_endings_fixed += o.line_endings_fixed;
        self.control_chars_removed += o.control_chars_removed;
    }
}

/// Clean one document. Returns the cleaned text and what was changed.
pub fn clean(text: &str) -> (String, CleanStats) {
    let mut stats = CleanStats::default();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                stats.line_endings_fixed += 1;
                out.push('\n');
            }
            '\n' | '\t' => out.push(c),
            '\u{FEFF}' => stats.control_chars_removed += 1,
            c if c.is_control() => stats.control_chars_removed += 1,
            c => out.push(c),
        }
    }
    let is_nfc = unicode_normalization::is_nfc_quick(out.chars())
        == unicode_normalization::IsNormalized::Yes;
    let out = if is_nfc { out } else { out.nfc().collect() };
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_normalises_nfc_line_endings_and_controls() {
        // "e" + combining acute -> precomposed "é"; CRLF and CR -> LF; BEL and BOM dropped.
        let (s, st) = clean("\u{FEFF}cafe\u{301}\r\nline\rnext\u{7}\tend");
        assert_eq!(s, "caf\u{e9}\nline\nnext\tend");
        assert_eq!(st.line_endings_fixed, 2);
        assert_eq!(st.control_chars_removed, 2);
    }

    #[test]
    fn clean_keeps_chinese_and_emoji() {
        let (s, st) = clean("接龙：给出前面的词，说出下一个。🐉");
        assert_eq!(s, "接龙：给出前面的词，说出下一个。🐉");
        assert_eq!(st, CleanStats::default());
    }
}
