//! NER examples and how they are read.
//!
//! Two JSONL line formats, both common in the field:
//! - words with tags: `{"tokens": ["Ada", "lives", "in", "London"], "tags": ["B-PER", "O", "O", "B-LOC"]}`
//!   (CoNLL-style; the text is the words joined by a space, except next to Chinese characters
//!   and full-width punctuation, which join without one);
//! - text with spans: `{"text": "Ada lives in London", "entities": [{"start": 0, "end": 3, "label": "PER"}]}`
//!   with **character** offsets, end exclusive (Python's `text[start:end]`). The text is cut into
//!   words (UAX #29 words; every Han character its own word; cut again at every entity edge)
//!   and the words are tagged BIO.
//!
//! Either way an example is its text, its words as character spans, and one BIO tag per word.

use super::bio::{self, TagSpan};
use super::CharMap;
use jielong_core::{Error, Result};
use jielong_text::segment::{is_han, word_segments};
use std::collections::BTreeSet;
use std::path::Path;

/// One sentence for NER: the text, its words (character spans, end exclusive) and a BIO tag per word.
#[derive(Debug, Clone, PartialEq)]
pub struct NerExample {
    pub text: String,
    pub words: Vec<(usize, usize)>,
    pub tags: Vec<String>,
}

/// A named entity in a text: its type and character span (end exclusive), and the text there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Entity {
    pub label: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

impl NerExample {
    /// An example from words and their tags (the text is the words joined, see the module doc).
    pub fn from_words<S: AsRef<str>>(words: &[S], tags: Vec<String>) -> Self {
        let mut text = String::new();
        let mut spans = Vec::with_capacity(words.len());
        let mut at = 0usize;
        for w in words {
            let w = w.as_ref();
            if let (Some(prev), Some(next)) = (text.chars().last(), w.chars().next()) {
                if !joins_tight(prev) && !joins_tight(next) {
                    text.push(' ');
                    at += 1;
                }
            }
            let n = w.chars().count();
            spans.push((at, at + n));
            at += n;
            text.push_str(w);
        }
        Self { text, words: spans, tags }
    }

    /// An example from text and character-span entities; spans must lie inside the text, hold
    /// some non-space text, and not overlap (checked: the message says what is wrong).
    pub fn from_spans(text: &str, entities: &[TagSpan]) -> std::result::Result<Self, String> {
        let map = CharMap::new(text);
        let mut sorted = entities.to_vec();
        sorted.sort_by_key(|e| (e.start, e.end));
        for (i, e) in sorted.iter().enumerate() {
            if e.start >= e.end || e.end > map.len() {
                return Err(format!("entity {}..{} ({}) is outside the text ({} characters) or empty", e.start, e.end, e.label, map.len()));
            }
            if e.label.is_empty() {
                return Err(format!("entity {}..{} has an empty label", e.start, e.end));
            }
            if i > 0 && sorted[i - 1].end > e.start {
                return Err(format!("entities {}..{} and {}..{} overlap", sorted[i - 1].start, sorted[i - 1].end, e.start, e.end));
            }
        }
        let mut cuts: BTreeSet<usize> = BTreeSet::new();
        for e in &sorted {
            cuts.insert(e.start);
            cuts.insert(e.end);
        }
        let mut words = Vec::new();
        for seg in word_segments(text) {
            let (s, e) = (map.char(seg.start), map.char(seg.end()));
            if seg.text.chars().any(is_han) {
                // Every character its own word: Chinese NER labels characters.
                words.extend((s..e).map(|c| (c, c + 1)));
                continue;
            }
            let mut from = s;
            for &c in cuts.range(s + 1..e) {
                words.push((from, c));
                from = c;
            }
            words.push((from, e));
        }
        // Whitespace-only pieces are dropped by the segmenter; drop any that an edge made.
        words.retain(|&(s, e)| !char_slice_of(text, &map, s, e).trim().is_empty());
        let mut tags = vec!["O".to_string(); words.len()];
        for ent in &sorted {
            let inside: Vec<usize> = (0..words.len()).filter(|&w| words[w].0 >= ent.start && words[w].1 <= ent.end).collect();
            if inside.is_empty() {
                return Err(format!("entity {}..{} ({}) covers no word of the text", ent.start, ent.end, ent.label));
            }
            for (k, &w) in inside.iter().enumerate() {
                tags[w] = format!("{}-{}", if k == 0 { 'B' } else { 'I' }, ent.label);
            }
        }
        Ok(Self { text: text.to_string(), words, tags })
    }

    /// The text of word `i`.
    pub fn word(&self, i: usize) -> &str {
        let (s, e) = self.words[i];
        super::char_slice(&self.text, s, e)
    }

    /// The gold entities, read from the tags as seqeval reads them.
    pub fn entities(&self) -> Vec<Entity> {
        spans_to_entities(&self.text, &self.words, &bio::entities(&self.tags))
    }
}

/// Entities from spans over words (the entity runs from its first word's start to its last
/// word's end).
pub(crate) fn spans_to_entities(text: &str, words: &[(usize, usize)], spans: &[TagSpan]) -> Vec<Entity> {
    let map = CharMap::new(text);
    spans
        .iter()
        .map(|s| {
            let (start, end) = (words[s.start].0, words[s.end - 1].1);
            Entity { label: s.label.clone(), start, end, text: char_slice_of(text, &map, start, end).to_string() }
        })
        .collect()
}

fn char_slice_of<'a>(text: &'a str, map: &CharMap, s: usize, e: usize) -> &'a str {
    &text[map.byte(s)..map.byte(e)]
}

/// Characters next to which words join without a space: Han, CJK punctuation and full-width forms.
fn joins_tight(c: char) -> bool {
    is_han(c) || matches!(c as u32, 0x3000..=0x303F | 0xFF00..=0xFFEF | 0x2014 | 0x2026 | 0x201C | 0x201D | 0x2018 | 0x2019)
}

/// The labels of a task, in a fixed order: the id of a label is its position. For NER: `O`
/// first, then `B-X`, `I-X` for every type in sorted order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabelSet {
    pub names: Vec<String>,
}

impl LabelSet {
    /// The BIO label set of the entity types seen in `examples`.
    pub fn bio_from(examples: &[NerExample]) -> Self {
        let types: BTreeSet<&str> = examples.iter().flat_map(|e| e.tags.iter()).filter_map(|t| t.get(2..).filter(|_| t != "O")).collect();
        let mut names = vec!["O".to_string()];
        for t in types {
            names.push(format!("B-{t}"));
            names.push(format!("I-{t}"));
        }
        Self { names }
    }

    pub fn id(&self, name: &str) -> Option<u32> {
        self.names.iter().position(|n| n == name).map(|i| i as u32)
    }

    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What reading a NER file found.
#[derive(Debug, Clone)]
pub struct NerRead {
    pub examples: Vec<NerExample>,
    /// `I-X` tags that did not continue an `X` entity and were made `B-X` (0 with `strict`).
    pub repaired: usize,
    pub labels: LabelSet,
}

#[derive(serde::Deserialize)]
struct Line {
    tokens: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    text: Option<String>,
    entities: Option<Vec<SpanLine>>,
}

#[derive(serde::Deserialize)]
struct SpanLine {
    start: usize,
    end: usize,
    label: String,
}

/// Parse one JSONL line (either format). `strict`: an `I-` that continues no entity is an
/// error; otherwise it is repaired and counted in the returned number.
pub fn parse_ner_line(line: &str, strict: bool) -> std::result::Result<(NerExample, usize), String> {
    let l: Line = serde_json::from_str(line).map_err(|e| format!("not a JSON object with \"tokens\"+\"tags\" or \"text\"+\"entities\": {e}"))?;
    let mut ex = match (l.tokens, l.tags, l.text, l.entities) {
        (Some(tokens), Some(tags), _, _) => {
            if tokens.len() != tags.len() {
                return Err(format!("{} tokens but {} tags: give one tag per token", tokens.len(), tags.len()));
            }
            if let Some(t) = tags.iter().find(|t| !bio::is_valid_tag(t)) {
                return Err(format!("tag `{t}` is not BIO: use O, B-TYPE or I-TYPE"));
            }
            if let Some(i) = tokens.iter().position(|t| t.trim().is_empty() || t.chars().any(char::is_whitespace)) {
                return Err(format!("token {i} ({:?}) is empty or holds whitespace: give words without spaces", tokens[i]));
            }
            NerExample::from_words(&tokens, tags)
        }
        (_, _, Some(text), Some(ents)) => {
            let spans: Vec<TagSpan> = ents.into_iter().map(|e| TagSpan { label: e.label, start: e.start, end: e.end }).collect();
            NerExample::from_spans(&text, &spans)?
        }
        (Some(_), None, _, _) => return Err("has \"tokens\" but no \"tags\"".into()),
        (_, _, Some(_), None) => return Err("has \"text\" but no \"entities\" (give [] for none)".into()),
        _ => return Err("needs \"tokens\"+\"tags\" or \"text\"+\"entities\"".into()),
    };
    if strict {
        if let Some(i) = bio::first_invalid_i(&ex.tags) {
            return Err(format!("tag {i} `{}` continues no entity (an I- after O or after another type); fix it or drop --strict to repair it as B-", ex.tags[i]));
        }
        return Ok((ex, 0));
    }
    let fixed = bio::repair_bio(&mut ex.tags);
    Ok((ex, fixed))
}

/// Read a NER JSONL file (blank lines skipped). Errors name the file and line.
pub fn read_ner_jsonl(path: &Path, strict: bool) -> Result<NerRead> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_ner_jsonl(&text, path, strict)
}

/// [`read_ner_jsonl`] on text already read; `path` names it in errors.
pub fn parse_ner_jsonl(text: &str, path: &Path, strict: bool) -> Result<NerRead> {
    let mut examples = Vec::new();
    let mut repaired = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (ex, fixed) = parse_ner_line(line, strict).map_err(|m| Error::format(path, format!("line {}: {m}", i + 1)))?;
        repaired += fixed;
        examples.push(ex);
    }
    if examples.is_empty() {
        return Err(Error::format(path, "no NER examples: expected JSONL lines with \"tokens\"+\"tags\" or \"text\"+\"entities\""));
    }
    let labels = LabelSet::bio_from(&examples);
    Ok(NerRead { examples, repaired, labels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ner_words_join_with_spaces_except_chinese() {
        let ex = NerExample::from_words(&["Ada", "去", "北", "京", "，", "then", "Paris"], vec!["O".into(); 7]);
        assert_eq!(ex.text, "Ada去北京，then Paris");
        assert_eq!(ex.word(6), "Paris");
        assert_eq!(ex.words[1], (3, 4));
    }

    #[test]
    fn ner_spans_cut_words_at_entity_edges() {
        let spans = [TagSpan { label: "LOC".into(), start: 2, end: 4 }, TagSpan { label: "PER".into(), start: 3, end: 5 }];
        let err = NerExample::from_spans("我在北京见到Ada Lovelace。", &spans).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        // 我 在 北 京 见 到 | Ada Lovelace (chars 6..18)
        let spans = [TagSpan { label: "LOC".into(), start: 2, end: 4 }, TagSpan { label: "PER".into(), start: 6, end: 18 }];
        let ex = NerExample::from_spans("我在北京见到Ada Lovelace。", &spans).unwrap();
        assert_eq!(ex.tags, ["O", "O", "B-LOC", "I-LOC", "O", "O", "B-PER", "I-PER", "O"]);
        let ents = ex.entities();
        assert_eq!(ents[0].text, "北京");
        assert_eq!((ents[1].start, ents[1].end, ents[1].text.as_str()), (6, 18, "Ada Lovelace"));
        // An entity edge inside an English word cuts it.
        let ex = NerExample::from_spans("NewYork", &[TagSpan { label: "LOC".into(), start: 0, end: 3 }]).unwrap();
        assert_eq!(ex.tags, ["B-LOC", "O"]);
    }

    #[test]
    fn ner_lines_report_bad_input() {
        assert!(parse_ner_line(r#"{"tokens":["a"],"tags":["B-X","O"]}"#, false).unwrap_err().contains("1 tokens but 2 tags"));
        assert!(parse_ner_line(r#"{"tokens":["a"],"tags":["PER"]}"#, false).unwrap_err().contains("not BIO"));
        assert!(parse_ner_line(r#"{"text":"abc","entities":[{"start":2,"end":9,"label":"X"}]}"#, false).unwrap_err().contains("outside"));
        let line = r#"{"tokens":["a","b","c"],"tags":["O","I-X","I-X"]}"#;
        let (ex, fixed) = parse_ner_line(line, false).unwrap();
        assert_eq!((fixed, ex.tags[1].as_str()), (1, "B-X"));
        assert!(parse_ner_line(line, true).unwrap_err().contains("tag 1 `I-X`"));
    }

    #[test]
    fn ner_file_collects_labels_and_names_line() {
        let text = "{\"tokens\":[\"a\"],\"tags\":[\"B-PER\"]}\n\n{\"text\":\"北京\",\"entities\":[{\"start\":0,\"end\":2,\"label\":\"LOC\"}]}\n";
        let r = parse_ner_jsonl(text, Path::new("x.jsonl"), false).unwrap();
        assert_eq!(r.labels.names, ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]);
        assert_eq!(r.examples[1].tags, ["B-LOC", "I-LOC"]);
        let err = parse_ner_jsonl("{\"tokens\":[\"a\"],\"tags\":[\"O\"]}\nnope\n", Path::new("x.jsonl"), false).unwrap_err().to_string();
        assert!(err.contains("x.jsonl") && err.contains("line 2"), "{err}");
    }
}
