//! Word and line measures the quality rules share.
//!
//! Words are Unicode word-boundary pieces (UAX #29) without the whitespace, so punctuation
//! marks are tokens of their own, as in the NLTK tokenisation datatrove's rules use. UAX #29
//! cuts Han text into single characters, which is what "Chinese text is measured in
//! characters where the English rules count words" asks for, without running a segmenter.

use unicode_segmentation::UnicodeSegmentation;

/// Word tokens: words, numbers, single ideographs and runs of punctuation (`...`, `-----` and
/// `?!` are one token each, as NLTK and spaCy keep them).
pub fn tokens(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    for (start, piece) in text.split_word_bound_indices() {
        let end = start + piece.len();
        if piece.chars().all(char::is_whitespace) {
            if let Some((s, e)) = run.take() {
                out.push(&text[s..e]);
            }
            continue;
        }
        let punct = piece.chars().all(|c| !c.is_alphanumeric());
        match (&mut run, punct) {
            (Some((_, e)), true) if *e == start => *e = end,
            _ => {
                if let Some((s, e)) = run.take() {
                    out.push(&text[s..e]);
                }
                if punct {
                    run = Some((start, end));
                } else {
                    out.push(piece);
                }
            }
        }
    }
    if let Some((s, e)) = run {
        out.push(&text[s..e]);
    }
    out
}

/// Whether a token is made of punctuation and symbols only (the "symbol words" the Gopher
/// rules leave out of their word counts).
pub fn is_symbol(token: &str) -> bool {
    token.chars().all(|c| !c.is_alphanumeric())
}

/// Whether a character is a CJK ideograph.
pub fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Fraction of the non-whitespace characters that are ideographs.
pub fn han_fraction(text: &str) -> f64 {
    let (mut han, mut all) = (0usize, 0usize);
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        all += 1;
        han += is_han(c) as usize;
    }
    if all == 0 {
        0.0
    } else {
        han as f64 / all as f64
    }
}

/// Length in characters (Unicode scalar values), as Python's `len` counts.
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Characters that end a sentence or a line of prose: C4's and FineWeb's terminal
/// punctuation plus the full-width Chinese marks.
pub fn ends_with_terminal_punct(line: &str) -> bool {
    let t = line.trim_end();
    t.ends_with(['.', '!', '?', '"', '\'', '。', '！', '？', '”', '」', '』', '…'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_words_punctuation_and_han_characters() {
        assert_eq!(tokens("Hello, world... 你好吗?!"), vec!["Hello", ",", "world", "...", "你", "好", "吗", "?!"]);
        assert_eq!(tokens("a -- b"), vec!["a", "--", "b"]);
        assert!(is_symbol("...") && is_symbol("#") && !is_symbol("a1") && !is_symbol("好"));
    }

    #[test]
    fn han_fraction_counts_ideographs_among_non_space_characters() {
        assert_eq!(han_fraction("你好 ab"), 0.5);
        assert_eq!(han_fraction("   "), 0.0);
        assert!(ends_with_terminal_punct("这是一句话。  ") && !ends_with_terminal_punct("no stop"));
    }
}
