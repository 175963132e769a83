//! Corpus BLEU as `sacrebleu` computes it by default (Papineni et al. 2002; Post 2018): one
//! reference per hypothesis, n-grams up to 4, clipped counts summed over the corpus, the
//! brevity penalty on the summed lengths, and the "exp" smoothing of mteval-v13a (an order
//! with no match counts as 1 / (2^k · total)). Checked against sacrebleu 2.6.0 in
//! `tests/bleu_sacrebleu.rs` (fixture and generator script in tests/fixtures/bleu).
//!
//! Tokenization: `13a` (sacrebleu's default, WMT's mteval-v13a: punctuation split off) or
//! `zh` (every Chinese character its own token, then 13a), which Chinese targets need: a
//! Chinese sentence has no spaces, so under 13a it would be one word. `zh` reproduces
//! sacrebleu's character table exactly, including its reading of the two supplementary-plane
//! ranges (Python compares them as two-character strings: they act as U+2001–U+2A6D and
//! U+2F81–U+2FA1).

use regex::Regex;
use std::collections::HashMap;
use std::sync::LazyLock;

/// How references and hypotheses are split into words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BleuTokenize {
    /// mteval-v13a.
    Tok13a,
    /// Chinese characters apart, then 13a.
    Zh,
}

impl BleuTokenize {
    /// `zh` when the references hold Chinese characters, else `13a` (what sacrebleu's
    /// command line recommends per target language).
    pub fn for_references(refs: &[String]) -> Self {
        if refs.iter().any(|r| r.chars().any(|c| ('\u{4e00}'..='\u{9fa5}').contains(&c))) {
            BleuTokenize::Zh
        } else {
            BleuTokenize::Tok13a
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BleuTokenize::Tok13a => "13a",
            BleuTokenize::Zh => "zh",
        }
    }
}

static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        (Regex::new(r"([\{-~\[-` -&\(-\+:-@/])").expect("regex"), " ${1} "),
        (Regex::new(r"([^0-9])([\.,])").expect("regex"), "${1} ${2} "),
        (Regex::new(r"([\.,])([^0-9])").expect("regex"), " ${1} ${2}"),
        (Regex::new(r"([0-9])(-)").expect("regex"), "${1} ${2} "),
    ]
});

fn post_tokenize(line: &str) -> Vec<String> {
    let mut s = line.to_string();
    for (re, rep) in RULES.iter() {
        s = re.replace_all(&s, *rep).into_owned();
    }
    s.split_whitespace().map(str::to_string).collect()
}

/// sacrebleu's 13a tokenizer.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    let mut s = line.replace("<skipped>", "").replace("-\n", "").replace('\n', " ");
    if s.contains('&') {
        s = s.replace("&quot;", "\"").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">");
    }
    post_tokenize(&format!(" {s} "))
}

const ZH_RANGES: [(u32, u32); 22] = [
    (0x3400, 0x4db5),
    (0x4e00, 0x9fa5),
    (0x9fa6, 0x9fbb),
    (0xf900, 0xfa2d),
    (0xfa30, 0xfa6a),
    (0xfa70, 0xfad9),
    (0x2001, 0x2a6d), // sacrebleu's '\u20000'–'\u2a6d6', as Python compares them
    (0x2f81, 0x2fa1), // '\u2f800'–'\u2fa1d'
    (0xff00, 0xffef),
    (0x2e80, 0x2eff),
    (0x3000, 0x303f),
    (0x31c0, 0x31ef),
    (0x2f00, 0x2fdf),
    (0x2ff0, 0x2fff),
    (0x3100, 0x312f),
    (0x31a0, 0x31bf),
    (0xfe10, 0xfe1f),
    (0xfe30, 0xfe4f),
    (0x2600, 0x26ff),
    (0x2700, 0x27bf),
    (0x3200, 0x32ff),
    (0x3300, 0x33ff),
];

fn is_zh_char(c: char) -> bool {
    let u = c as u32;
    ZH_RANGES.iter().any(|&(lo, hi)| lo <= u && u <= hi)
}

/// sacrebleu's zh tokenizer.
pub fn tokenize_zh(line: &str) -> Vec<String> {
    let mut s = String::with_capacity(line.len() * 3);
    for c in line.trim().chars() {
        if is_zh_char(c) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    post_tokenize(&s)
}

/// A corpus BLEU score and its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Bleu {
    /// 0–100.
    pub score: f64,
    /// n-gram precisions, 0–100.
    pub precisions: [f64; 4],
    pub brevity_penalty: f64,
    pub sys_len: usize,
    pub ref_len: usize,
}

fn ngrams(toks: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    for w in toks.windows(n) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

/// Corpus BLEU of `hyps` against one reference each.
pub fn corpus_bleu(hyps: &[String], refs: &[String], tokenize: BleuTokenize) -> Bleu {
    let tok = |s: &str| match tokenize {
        BleuTokenize::Tok13a => tokenize_13a(s),
        BleuTokenize::Zh => tokenize_zh(s),
    };
    let (mut correct, mut total) = ([0usize; 4], [0usize; 4]);
    let (mut sys_len, mut ref_len) = (0, 0);
    for (h, r) in hyps.iter().zip(refs) {
        let (h, r) = (tok(h), tok(r));
        sys_len += h.len();
        ref_len += r.len();
        for n in 1..=4 {
            let (hn, rn) = (ngrams(&h, n), ngrams(&r, n));
            total[n - 1] += h.len().saturating_sub(n - 1);
            correct[n - 1] += hn.iter().map(|(g, &c)| c.min(rn.get(g).copied().unwrap_or(0))).sum::<usize>();
        }
    }
    let bp = if sys_len < ref_len { if sys_len > 0 { (1.0 - ref_len as f64 / sys_len as f64).exp() } else { 0.0 } } else { 1.0 };
    let mut precisions = [0.0; 4];
    if correct.iter().all(|&c| c == 0) {
        return Bleu { score: 0.0, precisions, brevity_penalty: bp, sys_len, ref_len };
    }
    let mut smooth = 1.0;
    for n in 0..4 {
        if total[n] == 0 {
            break;
        }
        precisions[n] = if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
    }
    let log = |p: f64| if p == 0.0 { -9_999_999_999.0 } else { p.ln() };
    let score = bp * (precisions.iter().map(|&p| log(p)).sum::<f64>() / 4.0).exp();
    Bleu { score, precisions, brevity_penalty: bp, sys_len, ref_len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bleu_identical_corpus_scores_100_and_empty_scores_0() {
        let refs = vec!["the cat sat on the mat .".to_string(), "two thousand twenty-six".to_string()];
        assert!((corpus_bleu(&refs, &refs, BleuTokenize::Tok13a).score - 100.0).abs() < 1e-9);
        let empty = vec![String::new(), String::new()];
        assert_eq!(corpus_bleu(&empty, &refs, BleuTokenize::Tok13a).score, 0.0);
    }

    #[test]
    fn bleu_tokenizers_split_punctuation_and_chinese() {
        assert_eq!(tokenize_13a("Hello, world! 3.14 and 1-2"), ["Hello", ",", "world", "!", "3.14", "and", "1", "-", "2"]);
        assert_eq!(tokenize_zh("两千零二十六年。ok"), ["两", "千", "零", "二", "十", "六", "年", "。", "ok"]);
    }
}
