//! Extractive QA features and answer decoding, as Hugging Face's `run_qa.py` does them.
//!
//! Each example becomes one or more windows `[CLS] question [SEP] context-piece [SEP]` (no
//! special tokens when the tokenizer has none). A context longer than the room left by the
//! question is cut into pieces of at most `max_len` tokens in all, consecutive pieces
//! *overlapping* by `doc_stride` tokens (the `stride` of HF tokenizers, so an answer cut by one
//! window's edge is whole in the next). A window's target is the first and last token of the
//! first gold answer when the whole answer lies inside it, else the `[CLS]` position 0 for both
//! (also for v2.0's impossible questions).
//!
//! Decoding takes every window's start and end logits and picks the span with the highest
//! `start + end` logit over all windows, among spans of context tokens with start ≤ end and at
//! most `max_answer_len` tokens (every pair is tried, where `run_qa` tries the top 20 starts and
//! ends). The span is mapped back to characters of the context through the token offsets. The
//! null score (`start[0] + end[0]`, smallest over windows, as `run_qa` has it) is returned too,
//! so a v2.0 caller can answer "no answer" when it beats the span.

use super::align::Framing;
use super::squad::QaExample;
use super::{char_slice, CharMap};
use jielong_core::{Error, Result};
use jielong_tokenizer::Tokenizer;

#[derive(Debug, Clone, Copy)]
pub struct QaOptions {
    /// Tokens per window, special tokens and question included (`run_qa`'s `max_seq_length`).
    pub max_len: usize,
    /// Tokens of context shared by consecutive windows.
    pub doc_stride: usize,
    /// Longest question kept (longer ones are cut, as the original BERT `run_squad` did).
    pub max_query_len: usize,
}

impl Default for QaOptions {
    /// `run_qa`'s defaults: 384 tokens, stride 128; questions up to 64 tokens.
    fn default() -> Self {
        Self { max_len: 384, doc_stride: 128, max_query_len: 64 }
    }
}

/// One window of one example, ready for a start/end head.
#[derive(Debug, Clone, PartialEq)]
pub struct QaWindow {
    pub ids: Vec<u32>,
    /// 0 for `[CLS]`, question and first `[SEP]`; 1 for the context and the last `[SEP]`.
    pub type_ids: Vec<u32>,
    /// Character span in the context of each context token; `None` for every other token.
    pub context_offsets: Vec<Option<(usize, usize)>>,
    /// Target token positions of the answer (both 0 when it is not wholly in this window).
    pub start: usize,
    pub end: usize,
}

/// The windows of one example (see the module doc).
pub fn qa_windows(tk: &Tokenizer, framing: Framing, ex: &QaExample, opts: &QaOptions) -> Result<Vec<QaWindow>> {
    let mut q = tk.encode(&ex.question)?;
    q.truncate(opts.max_query_len);
    let (c_ids, c_bytes) = tk.encode_with_offsets(&ex.context)?;
    let map = CharMap::new(&ex.context);
    let c_off: Vec<(usize, usize)> = c_bytes.iter().map(|&(s, e)| (map.char(s), map.char_end(e))).collect();
    let specials = framing.cls.is_some() as usize + 2 * framing.sep.is_some() as usize;
    let room = opts.max_len.saturating_sub(q.len() + specials);
    if room == 0 || opts.doc_stride >= room {
        return Err(Error::input(format!(
            "question {}: max_len {} leaves {room} context tokens per window after the question ({} tokens) and special tokens, which must exceed doc_stride {}: raise max_len or lower doc_stride",
            ex.id, opts.max_len, q.len(), opts.doc_stride
        )));
    }
    let gold = ex.answers.first().filter(|_| !ex.is_impossible).map(|a| (a.start, a.end()));
    let mut out = Vec::new();
    let mut from = 0usize;
    loop {
        let to = (from + room).min(c_ids.len());
        let mut w = QaWindow { ids: Vec::new(), type_ids: Vec::new(), context_offsets: Vec::new(), start: 0, end: 0 };
        let push = |w: &mut QaWindow, id: u32, ty: u32, off: Option<(usize, usize)>| {
            w.ids.push(id);
            w.type_ids.push(ty);
            w.context_offsets.push(off);
        };
        if let Some(c) = framing.cls {
            push(&mut w, c, 0, None);
        }
        for &id in &q {
            push(&mut w, id, 0, None);
        }
        if let Some(s) = framing.sep {
            push(&mut w, s, 0, None);
        }
        let first_ctx = w.ids.len();
        for t in from..to {
            push(&mut w, c_ids[t], 1, Some(c_off[t]));
        }
        if let Some(s) = framing.sep {
            push(&mut w, s, 1, None);
        }
        if let Some((a_start, a_end)) = gold {
            let piece = &c_off[from..to];
            if !piece.is_empty() && piece[0].0 <= a_start && piece[piece.len() - 1].1 >= a_end {
                let s = piece.iter().position(|o| o.1 > a_start);
                let e = piece.iter().rposition(|o| o.0 < a_end);
                if let (Some(s), Some(e)) = (s, e) {
                    if s <= e {
                        w.start = first_ctx + s;
                        w.end = first_ctx + e;
                    }
                }
            }
        }
        out.push(w);
        if to >= c_ids.len() {
            break;
        }
        from = to - opts.doc_stride;
    }
    Ok(out)
}

/// The answer a QA head gave.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QaAnswer {
    pub text: String,
    /// Character span in the context, end exclusive.
    pub start: usize,
    pub end: usize,
    /// start logit + end logit of the span.
    pub score: f32,
    /// The no-answer score (`start[0] + end[0]`, smallest over windows).
    pub null_score: f32,
}

/// The best span over all `windows` of one example (see the module doc); `start_logits[w]` and
/// `end_logits[w]` hold one logit per token of window `w`. `None` when no window holds a
/// context token.
pub fn best_answer(context: &str, windows: &[QaWindow], start_logits: &[Vec<f32>], end_logits: &[Vec<f32>], max_answer_len: usize) -> Option<QaAnswer> {
    let mut best: Option<(f32, usize, usize)> = None;
    let mut null = f32::INFINITY;
    for (w, win) in windows.iter().enumerate() {
        let (sl, el) = (&start_logits[w], &end_logits[w]);
        if let (Some(a), Some(b)) = (sl.first(), el.first()) {
            null = null.min(a + b);
        }
        let n = win.ids.len().min(sl.len()).min(el.len());
        for (s, &s_logit) in sl.iter().enumerate().take(n) {
            let Some((cs, _)) = win.context_offsets[s] else { continue };
            for (e, &e_logit) in el.iter().enumerate().take(n.min(s + max_answer_len)).skip(s) {
                let Some((_, ce)) = win.context_offsets[e] else { continue };
                let score = s_logit + e_logit;
                if best.is_none_or(|b| score > b.0) {
                    best = Some((score, cs, ce));
                }
            }
        }
    }
    best.map(|(score, start, end)| QaAnswer { text: char_slice(context, start, end).to_string(), start, end, score, null_score: null })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labelled::squad::Answer;
    use jielong_tokenizer::TokenizerKind;

    fn tk() -> Tokenizer {
        let corpus = ["The dragon game 接龙 starts from the last word of a chain.", "Who plays it? Children in 北京 and London play it."];
        Tokenizer::train(TokenizerKind::Wordpiece, 150, corpus.iter().map(|s| s.to_string()).cycle().take(20)).unwrap()
    }

    fn example() -> QaExample {
        let context = "The dragon game 接龙 starts from the last word of a chain. Children in 北京 and London play it.".to_string();
        let start = context.chars().collect::<String>().find("北京").map(|b| context[..b].chars().count()).unwrap();
        QaExample { id: "q1".into(), title: "t".into(), context, question: "Who plays it?".into(), answers: vec![Answer { text: "北京".into(), start }], is_impossible: false }
    }

    #[test]
    fn qa_windows_overlap_by_stride_and_mark_the_answer() {
        let tk = tk();
        let ex = example();
        let fr = Framing::for_tokenizer(&tk);
        let one = qa_windows(&tk, fr, &ex, &QaOptions { max_len: 256, doc_stride: 4, max_query_len: 64 }).unwrap();
        assert_eq!(one.len(), 1);
        let w = &one[0];
        assert_eq!(w.ids[0], fr.cls.unwrap());
        let (s, e) = (w.context_offsets[w.start].unwrap(), w.context_offsets[w.end].unwrap());
        assert_eq!(char_slice(&ex.context, s.0, e.1), "北京");
        let many = qa_windows(&tk, fr, &ex, &QaOptions { max_len: 16, doc_stride: 3, max_query_len: 64 }).unwrap();
        assert!(many.len() > 2);
        let ctx: Vec<Vec<(usize, usize)>> = many.iter().map(|w| w.context_offsets.iter().flatten().copied().collect()).collect();
        for pair in ctx.windows(2) {
            assert_eq!(pair[0][pair[0].len() - 3..], pair[1][..3], "consecutive windows share doc_stride tokens");
        }
        assert_eq!(ctx.last().unwrap().last().unwrap().1, ex.context.chars().count(), "the last window reaches the end");
        // The answer is marked where it is whole, CLS (0, 0) elsewhere.
        let marked: Vec<&QaWindow> = many.iter().filter(|w| w.start > 0).collect();
        assert!(!marked.is_empty() && marked.len() < many.len());
        for w in &many {
            assert!(w.len_ok());
        }
        let err = qa_windows(&tk, fr, &ex, &QaOptions { max_len: 8, doc_stride: 4, max_query_len: 64 }).unwrap_err().to_string();
        assert!(err.contains("question q1") && err.contains("doc_stride"), "{err}");
    }

    impl QaWindow {
        fn len_ok(&self) -> bool {
            self.ids.len() == self.type_ids.len() && self.ids.len() == self.context_offsets.len() && self.start <= self.end
        }
    }

    #[test]
    fn best_answer_maps_logits_back_to_characters() {
        let tk = tk();
        let ex = example();
        let wins = qa_windows(&tk, Framing::for_tokenizer(&tk), &ex, &QaOptions { max_len: 16, doc_stride: 3, max_query_len: 64 }).unwrap();
        // Logits that point at the gold positions in every window that holds the answer.
        let mut sl: Vec<Vec<f32>> = wins.iter().map(|w| vec![0.0; w.ids.len()]).collect();
        let mut el = sl.clone();
        for (i, w) in wins.iter().enumerate() {
            sl[i][0] = 1.0;
            el[i][0] = 1.0;
            if w.start > 0 {
                sl[i][w.start] = 5.0;
                el[i][w.end] = 4.0;
            }
        }
        let a = best_answer(&ex.context, &wins, &sl, &el, 30).unwrap();
        assert_eq!((a.text.as_str(), a.start, a.end, a.score, a.null_score), ("北京", ex.answers[0].start, ex.answers[0].end(), 9.0, 2.0));
        // An end before the start, or a span too long, is never chosen; question tokens are never chosen.
        let mut sl2 = sl.clone();
        for (i, w) in wins.iter().enumerate() {
            sl2[i][1] = 100.0; // a question token
            if w.start > 0 {
                el[i][w.start - 1] = 50.0;
            }
        }
        let b = best_answer(&ex.context, &wins, &sl2, &el, 1).unwrap();
        assert!(b.end - b.start <= 2 && b.score < 100.0, "{b:?}");
    }
}

/// Windows and NER labels against Hugging Face's `run_qa.py` / `run_ner.py` preprocessing on the
/// same tokenizer (`tests/fixtures/labelled/align.json`, made by `make_align.py` beside it).
#[cfg(test)]
mod reference {
    use super::*;
    use crate::labelled::align::align_ner;
    use crate::labelled::ner::{LabelSet, NerExample};
    use crate::labelled::squad::Answer;
    use crate::labelled::IGNORE;
    use serde_json::Value;
    use std::path::Path;

    fn fixture() -> (Tokenizer, Value) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/labelled");
        let tk = Tokenizer::load(&dir.join("tokenizer.json")).unwrap();
        (tk, serde_json::from_str(&std::fs::read_to_string(dir.join("align.json")).unwrap()).unwrap())
    }

    fn get<T: serde::de::DeserializeOwned>(v: &Value) -> T {
        serde_json::from_value(v.clone()).unwrap()
    }

    #[test]
    fn qa_windows_equal_hf_run_qa() {
        let (tk, f) = fixture();
        let fr = Framing::for_tokenizer(&tk);
        let context: String = get(&f["context"]);
        for case in f["qa"].as_array().unwrap() {
            let ex = QaExample {
                id: "q".into(),
                title: String::new(),
                context: context.clone(),
                question: get(&case["question"]),
                answers: vec![Answer { text: get(&case["answer"]), start: get(&case["answer_start"]) }],
                is_impossible: false,
            };
            let opts = QaOptions { max_len: get(&case["max_len"]), doc_stride: get(&case["stride"]), max_query_len: 64 };
            let wins = qa_windows(&tk, fr, &ex, &opts).unwrap();
            let want = case["windows"].as_array().unwrap();
            assert_eq!(wins.len(), want.len(), "{opts:?} {:?}: number of windows", ex.question);
            for (k, (w, r)) in wins.iter().zip(want).enumerate() {
                let at = format!("{opts:?} {:?} window {k}", ex.question);
                assert_eq!(w.ids, get::<Vec<u32>>(&r["input_ids"]), "{at}: ids");
                assert_eq!(w.type_ids, get::<Vec<u32>>(&r["token_type_ids"]), "{at}: type ids");
                assert_eq!(w.context_offsets, get::<Vec<Option<(usize, usize)>>>(&r["context_offsets"]), "{at}: offsets");
                assert_eq!((w.start, w.end), (get(&r["start"]), get(&r["end"])), "{at}: answer positions");
            }
        }
    }

    #[test]
    fn align_ner_equals_hf_run_ner() {
        let (tk, f) = fixture();
        let labels = LabelSet { names: get(&f["labels"]) };
        for case in f["ner"].as_array().unwrap() {
            let words: Vec<String> = get(&case["tokens"]);
            let ex = NerExample::from_words(&words, get(&case["tags"]));
            let feats = align_ner(&tk, &ex, &labels, Framing::for_tokenizer(&tk), 64).unwrap();
            assert_eq!(feats.ids, get::<Vec<u32>>(&case["input_ids"]), "{words:?}: ids");
            let ours: Vec<i64> = feats.labels.iter().map(|&l| if l == IGNORE { -100 } else { l as i64 }).collect();
            assert_eq!(ours, get::<Vec<i64>>(&case["labels"]), "{words:?}: labels");
        }
    }
}
