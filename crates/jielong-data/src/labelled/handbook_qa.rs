//! A built-in extractive QA set made from Markdown chapters (jielong's own handbook), so QA
//! fine-tuning can be tried with nothing downloaded.
//!
//! Every prose paragraph (code blocks, tables, lists, quotes and headings skipped; Markdown
//! emphasis, code ticks and link targets removed) becomes a context. For every sentence in it,
//! one content word is picked with a seeded generator (English: a word of four or more letters
//! that is not a common function word, or a number; Chinese: a jieba word of two or more Han
//! characters); the question is the sentence with that word blanked out (`Fill in the blank: …
//! ____ …` / `填空：……____……`), and the answer is the word at its place in the context. It is a
//! cloze task in SQuAD format: to answer, a model has to find the sentence in the context and
//! read off what stands where the blank is. The same chapters and seed give the same set.

use super::squad::{Answer, QaExample};
use jielong_core::Rng;
use jielong_text::segment::{is_han, sentences, word_spans};

const STOP: &[&str] = &[
    "that", "this", "with", "from", "have", "they", "them", "then", "than", "what", "when", "where", "which", "while", "will", "would", "there", "their",
    "these", "those", "into", "each", "every", "some", "only", "also", "more", "most", "much", "many", "such", "very", "does", "done", "been", "were", "your",
    "about", "over", "just", "like", "here", "same", "other", "once", "after", "before", "because", "could", "should", "being", "both", "even", "make",
];

/// The cloze questions of `chapters` — (path such as `en/08-finetuning.md`, Markdown text); a
/// chapter under `zh/` gets Chinese questions.
pub fn generate(chapters: &[(&str, &str)], seed: u64) -> Vec<QaExample> {
    let mut out = Vec::new();
    for (ci, (path, md)) in chapters.iter().enumerate() {
        let zh = path.starts_with("zh/") || path.contains("/zh/");
        let title = md.lines().find_map(|l| l.strip_prefix("# ")).map(str::trim).unwrap_or(path).to_string();
        let stem = path.rsplit('/').next().unwrap_or(path).trim_end_matches(".md");
        for (pi, context) in paragraphs(md).into_iter().enumerate() {
            let mut at_byte = 0;
            for (si, sent) in sentences(&context).into_iter().enumerate() {
                let Some(off) = context[at_byte..].find(sent).map(|b| at_byte + b) else { continue };
                at_byte = off + sent.len();
                let cands: Vec<(usize, &str)> = word_spans(sent).into_iter().filter(|w| is_answer_word(w.text)).map(|w| (w.start, w.text)).collect();
                // Formulas and code-like lines make poor questions.
                if cands.is_empty() || sent.chars().count() < 8 || sent.contains(['=', '_', '{', '}', '\\', '|', '→']) {
                    continue;
                }
                let mut rng = Rng::derive(seed, &[ci as u64, pi as u64, si as u64]);
                let (wb, word) = cands[rng.below(cands.len() as u64) as usize];
                let blanked = format!("{}____{}", &sent[..wb], &sent[wb + word.len()..]);
                let question = if zh { format!("填空：{blanked}") } else { format!("Fill in the blank: {blanked}") };
                let start = context[..off + wb].chars().count();
                out.push(QaExample {
                    id: format!("handbook-{}-{stem}-{pi}-{si}", if zh { "zh" } else { "en" }),
                    title: title.clone(),
                    context: context.clone(),
                    question,
                    answers: vec![Answer { text: word.to_string(), start }],
                    is_impossible: false,
                });
            }
        }
    }
    out
}

fn is_answer_word(w: &str) -> bool {
    if w.chars().any(is_han) {
        return w.chars().filter(|&c| is_han(c)).count() >= 2 && w.chars().all(is_han);
    }
    if w.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    w.chars().count() >= 4 && w.chars().all(char::is_alphabetic) && !STOP.contains(&w.to_lowercase().as_str())
}

/// Prose paragraphs of a Markdown text, lines joined (no space between two Han characters),
/// inline markup removed.
pub fn paragraphs(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut in_code = false;
    let flush = |cur: &mut Vec<&str>, out: &mut Vec<String>| {
        if !cur.is_empty() {
            let mut p = String::new();
            for l in cur.drain(..) {
                if let (Some(a), Some(b)) = (p.chars().last(), l.chars().next()) {
                    // A line break between CJK text (Han or full-width) joins without a space.
                    let cjk_seam = is_han(a) || is_han(b) || (!a.is_ascii() && !b.is_ascii());
                    if !cjk_seam {
                        p.push(' ');
                    }
                }
                p.push_str(l);
            }
            let p = strip_inline(&p);
            if p.chars().count() >= 20 {
                out.push(p);
            }
        }
    };
    for line in md.lines() {
        let l = line.trim();
        if l.starts_with("```") {
            in_code = !in_code;
            flush(&mut cur, &mut out);
            continue;
        }
        let prose = !in_code && !l.is_empty() && !l.starts_with(['#', '|', '-', '*', '>', '<', '!']) && !l.starts_with(|c: char| c.is_ascii_digit() && l.contains(". ")) && !line.starts_with("    ");
        if prose {
            cur.push(l);
        } else {
            flush(&mut cur, &mut out);
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Remove `**`, `*`/`_` emphasis markers at word edges, code ticks, and link targets (`[text](url)` → `text`).
fn strip_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['[', '`', '*']) {
        out.push_str(&rest[..i]);
        let r = &rest[i..];
        if let Some(inner) = r.strip_prefix('[') {
            if let Some(close) = inner.find("](") {
                if let Some(end) = inner[close + 2..].find(')') {
                    out.push_str(&inner[..close]);
                    rest = &inner[close + 2 + end + 1..];
                    continue;
                }
            }
            out.push('[');
            rest = inner;
        } else {
            rest = &r[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labelled::{char_slice, parse_squad, to_squad_json};
    use std::path::Path;

    const EN: &str = "# Tokens\n\nA **tokenizer** cuts text into pieces. Every piece gets a number,\nits id in the `vocabulary`.\n\n```\ncode is skipped here entirely\n```\n\n- lists are skipped too\n";
    const ZH: &str = "# 词元\n\n分词器把文本切成小块。每一块都有一个编号，\n就是它在词表里的位置。\n";

    #[test]
    fn handbook_qa_blanks_a_word_that_is_in_the_context() {
        let chapters = [("en/01-tokens.md", EN), ("zh/01-tokens.md", ZH)];
        let qs = generate(&chapters, 7);
        assert_eq!(qs.len(), 4, "{qs:#?}");
        assert_eq!(qs[0].context, "A tokenizer cuts text into pieces. Every piece gets a number, its id in the vocabulary.");
        assert_eq!(qs[2].context, "分词器把文本切成小块。每一块都有一个编号，就是它在词表里的位置。");
        for q in &qs {
            let a = &q.answers[0];
            assert_eq!(char_slice(&q.context, a.start, a.end()), a.text);
            assert!(q.question.contains("____") && !q.question.contains(&format!(" {} ", a.text)));
        }
        assert!(qs[2].question.starts_with("填空：") && qs[0].question.starts_with("Fill in the blank: "));
        // Deterministic per seed; valid SQuAD that reads back.
        assert_eq!(generate(&chapters, 7), qs);
        assert_eq!(parse_squad(&to_squad_json(&qs).to_string(), Path::new("hb.json")).unwrap(), qs);
        let other = generate(&chapters, 8);
        assert_eq!(other.len(), qs.len());
    }

    #[test]
    fn handbook_qa_strips_inline_markdown() {
        assert_eq!(strip_inline("see [the docs](http://x.y/z) and `code` **bold**"), "see the docs and code bold");
    }
}
