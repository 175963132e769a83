//! NER labels on sub-word pieces, and back.
//!
//! A tokenizer cuts a word into pieces (`Lovelace` → `Love`, `##lace`); the label belongs to the
//! word. As Hugging Face's token-classification examples do (`label_all_tokens=False`), the
//! *first* piece of each word gets the word's label and every other piece gets [`IGNORE`], so
//! each word is counted once in the loss; special tokens get [`IGNORE`] too. At prediction time
//! the inverse reads each word's label off its first piece and cuts the word tags into entities
//! as seqeval does, giving character spans in the original text.
//!
//! Pieces are matched to words by their offsets: a piece belongs to the first word it overlaps.
//! A piece that spans two words (a byte-level BPE merge of two Chinese characters) labels only
//! the first; the second word has no piece of its own and is counted in `unaligned_words` (its
//! label is lost for training and it is read as `O` when decoding).

use super::bio;
use super::ner::{spans_to_entities, Entity, LabelSet, NerExample};
use super::{CharMap, IGNORE};
use jielong_core::{Error, Result};
use jielong_tokenizer::Tokenizer;

/// The special tokens a model's inputs are framed with: `[CLS] … [SEP]` for BERT-style
/// encoders, none for a causal model trained on plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub cls: Option<u32>,
    pub sep: Option<u32>,
}

impl Framing {
    /// `[CLS]`/`[SEP]` when the tokenizer has them (WordPiece tokenizers and BERT checkpoints
    /// do), else `<s>`/`</s>`, else none.
    pub fn for_tokenizer(tk: &Tokenizer) -> Self {
        let id = |t: &str| tk.inner().token_to_id(t);
        match (id("[CLS]"), id("[SEP]")) {
            (Some(c), Some(s)) => Self { cls: Some(c), sep: Some(s) },
            _ => match (id("<s>"), id("</s>")) {
                (Some(c), Some(s)) => Self { cls: Some(c), sep: Some(s) },
                _ => Self::none(),
            },
        }
    }

    pub fn none() -> Self {
        Self { cls: None, sep: None }
    }

    /// Tokens the framing adds around one text.
    pub fn overhead(&self) -> usize {
        self.cls.is_some() as usize + self.sep.is_some() as usize
    }
}

/// One NER example as model input.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFeatures {
    pub ids: Vec<u32>,
    /// Label id per token: the word's label on its first piece, [`IGNORE`] elsewhere.
    pub labels: Vec<u32>,
    /// The word each token belongs to (`None` for special tokens and pieces outside any word).
    pub word_of: Vec<Option<usize>>,
    /// Character span of each token in the text (`None` for special tokens).
    pub offsets: Vec<Option<(usize, usize)>>,
    /// Words with no piece of their own (see the module doc), after truncation.
    pub unaligned_words: usize,
    /// Words cut off by `max_len`.
    pub truncated_words: usize,
}

/// Tokenize `ex` and label its pieces (see the module doc). At most `max_len` tokens, framing
/// included; words past the limit are dropped and counted. A tag not in `labels` is an error
/// naming it.
pub fn align_ner(tk: &Tokenizer, ex: &NerExample, labels: &LabelSet, framing: Framing, max_len: usize) -> Result<TokenFeatures> {
    let tag_ids: Vec<u32> = ex
        .tags
        .iter()
        .map(|t| labels.id(t).ok_or_else(|| Error::input(format!("label `{t}` is not in the label set ({}): the checkpoint was trained without it", labels.names.join(", ")))))
        .collect::<Result<_>>()?;
    if max_len <= framing.overhead() {
        return Err(Error::input(format!("max_len {max_len} leaves no room for text after the special tokens")));
    }
    let (ids, byte_offsets) = tk.encode_with_offsets(&ex.text)?;
    let map = CharMap::new(&ex.text);
    let mut f = TokenFeatures { ids: Vec::new(), labels: Vec::new(), word_of: Vec::new(), offsets: Vec::new(), unaligned_words: 0, truncated_words: 0 };
    if let Some(c) = framing.cls {
        push_special(&mut f, c);
    }
    let room = max_len - framing.overhead();
    let mut seen = vec![false; ex.words.len()];
    let mut w = 0usize; // words are in order: search onwards from the last match
    for (&id, &(bs, be)) in ids.iter().zip(&byte_offsets).take(room) {
        let (cs, ce) = (map.char(bs), map.char_end(be));
        while w < ex.words.len() && ex.words[w].1 <= cs {
            w += 1;
        }
        let word = (w < ex.words.len() && ex.words[w].0 < ce && cs < ex.words[w].1).then_some(w);
        let label = match word {
            Some(w) if !seen[w] => {
                seen[w] = true;
                tag_ids[w]
            }
            _ => IGNORE,
        };
        f.ids.push(id);
        f.labels.push(label);
        f.word_of.push(word);
        f.offsets.push(Some((cs, ce)));
    }
    if let Some(s) = framing.sep {
        push_special(&mut f, s);
    }
    let last_char = f.offsets.iter().rev().flatten().next().map_or(0, |o| o.1);
    let kept_words = if ids.len() > room { ex.words.iter().take_while(|w| w.0 < last_char).count() } else { ex.words.len() };
    f.truncated_words = ex.words.len() - kept_words;
    f.unaligned_words = seen[..kept_words].iter().filter(|s| !**s).count();
    Ok(f)
}

fn push_special(f: &mut TokenFeatures, id: u32) {
    f.ids.push(id);
    f.labels.push(IGNORE);
    f.word_of.push(None);
    f.offsets.push(None);
}

/// Predicted label ids (one per token of `features`, e.g. the argmax of a token-classification
/// head) → entities with character spans in `ex.text`. Each word takes the label predicted on
/// its first piece (words without one read as `O`); the word tags are cut into entities as
/// seqeval does.
pub fn decode_ner(ex: &NerExample, features: &TokenFeatures, predicted: &[u32], labels: &LabelSet) -> Vec<Entity> {
    let mut tags = vec!["O"; ex.words.len()];
    let mut seen = vec![false; ex.words.len()];
    for (t, word) in features.word_of.iter().enumerate() {
        if let (Some(w), Some(&p)) = (*word, predicted.get(t)) {
            if !seen[w] {
                seen[w] = true;
                tags[w] = labels.name(p).unwrap_or("O");
            }
        }
    }
    spans_to_entities(&ex.text, &ex.words, &bio::entities(&tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labelled::bio::TagSpan;
    use jielong_tokenizer::TokenizerKind;

    fn wordpiece() -> Tokenizer {
        let corpus = ["Ada Lovelace lives in London and Paris.", "我在北京见到了Ada。", "Lovelace wrote notes on the engine."];
        Tokenizer::train(TokenizerKind::Wordpiece, 120, corpus.iter().map(|s| s.to_string()).cycle().take(30)).unwrap()
    }

    fn labels() -> LabelSet {
        LabelSet { names: ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"].iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn align_ner_labels_first_piece_only_english() {
        let tk = wordpiece();
        let ex = NerExample::from_words(&["Ada", "Lovelace", "visited", "London"], ["B-PER", "I-PER", "O", "B-LOC"].iter().map(|s| s.to_string()).collect());
        let fr = Framing::for_tokenizer(&tk);
        assert!(fr.cls.is_some() && fr.sep.is_some());
        let f = align_ner(&tk, &ex, &labels(), fr, 64).unwrap();
        let pieces: Vec<String> = f.ids.iter().map(|&i| tk.id_to_piece(i).unwrap()).collect();
        // Every word labelled exactly once, on its first piece; special tokens ignored.
        assert_eq!(f.labels[0], IGNORE);
        assert_eq!(*f.labels.last().unwrap(), IGNORE);
        for w in 0..4 {
            let toks: Vec<usize> = (0..f.ids.len()).filter(|&t| f.word_of[t] == Some(w)).collect();
            assert!(!toks.is_empty(), "word {w} has pieces: {pieces:?}");
            assert_eq!(f.labels[toks[0]], labels().id(&ex.tags[w]).unwrap());
            assert!(toks[1..].iter().all(|&t| f.labels[t] == IGNORE), "later pieces ignored: {pieces:?}");
        }
        assert!(f.ids.len() > 6, "the small vocabulary splits some words: {pieces:?}");
        // Decoding the gold labels back gives the gold entities.
        let gold: Vec<u32> = f.labels.iter().map(|&l| if l == IGNORE { 0 } else { l }).collect();
        let ents = decode_ner(&ex, &f, &gold, &labels());
        assert_eq!(ents, ex.entities());
        assert_eq!(ents[0].text, "Ada Lovelace");
        assert_eq!((ents[1].start, ents[1].end), (21, 27));
    }

    #[test]
    fn align_ner_chinese_and_mixed_spans() {
        let tk = wordpiece();
        let text = "我在北京见到了Ada Lovelace。";
        let spans = [TagSpan { label: "LOC".into(), start: 2, end: 4 }, TagSpan { label: "PER".into(), start: 7, end: 19 }];
        let ex = NerExample::from_spans(text, &spans).unwrap();
        let f = align_ner(&tk, &ex, &labels(), Framing::for_tokenizer(&tk), 64).unwrap();
        assert_eq!(f.unaligned_words, 0);
        // Decode a prediction with a continuation piece labelled wrongly: only first pieces count.
        let mut pred: Vec<u32> = f.labels.iter().map(|&l| if l == IGNORE { 2 } else { l }).collect();
        pred[0] = 1; // [CLS] predicted B-LOC: ignored, it is no word
        let ents = decode_ner(&ex, &f, &pred, &labels());
        let got: Vec<(&str, usize, usize, &str)> = ents.iter().map(|e| (e.label.as_str(), e.start, e.end, e.text.as_str())).collect();
        assert_eq!(got, [("LOC", 2, 4, "北京"), ("PER", 7, 19, "Ada Lovelace")]);
    }

    #[test]
    fn align_ner_truncates_and_rejects_unknown_labels() {
        let tk = wordpiece();
        let ex = NerExample::from_words(&["London", "and", "Paris"], ["B-LOC", "O", "B-LOC"].iter().map(|s| s.to_string()).collect());
        let f = align_ner(&tk, &ex, &labels(), Framing::for_tokenizer(&tk), 3).unwrap();
        assert_eq!(f.ids.len(), 3);
        assert!(f.truncated_words >= 2, "{f:?}");
        let bad = NerExample::from_words(&["x"], vec!["B-ORG".into()]);
        let err = align_ner(&tk, &bad, &labels(), Framing::none(), 8).unwrap_err().to_string();
        assert!(err.contains("B-ORG"), "{err}");
    }

    #[test]
    fn align_ner_byte_bpe_merge_counts_unaligned_word() {
        let corpus = ["北京北京北京 上海上海"; 40];
        let tk = Tokenizer::train(TokenizerKind::Bpe, 300, corpus.iter().map(|s| s.to_string())).unwrap();
        let ex = NerExample::from_words(&["北", "京"], vec!["B-LOC".into(), "I-LOC".into()]);
        let f = align_ner(&tk, &ex, &labels(), Framing::none(), 16).unwrap();
        assert_eq!(f.ids.len(), 1, "the byte-level BPE learnt 北京 as one token");
        assert_eq!(f.unaligned_words, 1, "京 has no piece of its own");
        assert_eq!(f.labels, [1]);
        let ents = decode_ner(&ex, &f, &[1], &labels());
        assert_eq!((ents[0].text.as_str(), ents[0].end), ("北", 1), "an unaligned word reads as O");
    }
}
