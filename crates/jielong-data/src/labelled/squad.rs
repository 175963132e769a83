//! SQuAD-format QA data: `{"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id",
//! "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}`. v1.1 has an answer
//! for every question; v2.0 adds `is_impossible: true` questions with no answer.
//!
//! `answer_start` is a **character** offset into the context (Python's indexing). Every answer is
//! checked: it must lie inside its context and the context must read `text` there; the error names
//! the question id.

use super::char_slice;
use jielong_core::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub text: String,
    /// Character offset of the answer in the context.
    pub start: usize,
}

impl Answer {
    /// Character offset just past the answer.
    pub fn end(&self) -> usize {
        self.start + self.text.chars().count()
    }
}

/// One question about one context.
#[derive(Debug, Clone, PartialEq)]
pub struct QaExample {
    pub id: String,
    pub title: String,
    pub context: String,
    pub question: String,
    /// Gold answers (several annotators may give different spans); empty when impossible.
    pub answers: Vec<Answer>,
    pub is_impossible: bool,
}

#[derive(serde::Deserialize)]
struct File {
    data: Vec<Article>,
}
#[derive(serde::Deserialize)]
struct Article {
    #[serde(default)]
    title: String,
    paragraphs: Vec<Paragraph>,
}
#[derive(serde::Deserialize)]
struct Paragraph {
    context: String,
    qas: Vec<Qa>,
}
#[derive(serde::Deserialize)]
struct Qa {
    id: Value,
    question: String,
    #[serde(default)]
    answers: Vec<RawAnswer>,
    #[serde(default)]
    is_impossible: bool,
}
#[derive(serde::Deserialize)]
struct RawAnswer {
    text: String,
    answer_start: i64,
}

/// Read and check a SQuAD v1.1 or v2.0 JSON file.
pub fn read_squad(path: &Path) -> Result<Vec<QaExample>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_squad(&text, path)
}

/// [`read_squad`] on text already read; `path` names it in errors.
pub fn parse_squad(text: &str, path: &Path) -> Result<Vec<QaExample>> {
    let file: File = serde_json::from_str(text).map_err(|e| Error::format(path, format!("not SQuAD JSON ({{\"data\": [{{\"paragraphs\": [{{\"context\", \"qas\"}}]}}]}}): {e}")))?;
    let mut out = Vec::new();
    for art in file.data {
        for p in art.paragraphs {
            let n = p.context.chars().count();
            for qa in p.qas {
                let id = match &qa.id {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let bad = |m: String| Error::format(path, format!("question {id}: {m}"));
                if qa.is_impossible && !qa.answers.is_empty() {
                    return Err(bad("is_impossible is true but it has answers".into()));
                }
                if !qa.is_impossible && qa.answers.is_empty() {
                    return Err(bad("no answers (mark it \"is_impossible\": true for SQuAD v2.0)".into()));
                }
                let mut answers = Vec::new();
                for a in qa.answers {
                    let len = a.text.chars().count();
                    if a.answer_start < 0 || a.answer_start as usize + len > n || a.text.is_empty() {
                        return Err(bad(format!("answer {:?} at {} lies outside its context ({n} characters)", a.text, a.answer_start)));
                    }
                    let start = a.answer_start as usize;
                    let there = char_slice(&p.context, start, start + len);
                    if there != a.text {
                        return Err(bad(format!("answer_start {start} points at {there:?}, not the answer text {:?} (offsets count characters, not bytes)", a.text)));
                    }
                    answers.push(Answer { text: a.text, start });
                }
                out.push(QaExample { id, title: art.title.clone(), context: p.context.clone(), question: qa.question, answers, is_impossible: qa.is_impossible });
            }
        }
    }
    if out.is_empty() {
        return Err(Error::format(path, "no questions in the file"));
    }
    Ok(out)
}

/// SQuAD JSON for `examples` (v2.0 when any is impossible, else v1.1); questions on the same
/// title and context share one paragraph.
pub fn to_squad_json(examples: &[QaExample]) -> Value {
    let v2 = examples.iter().any(|e| e.is_impossible);
    // (title, [(context, questions)]) in file order.
    type Paragraphs = Vec<(String, Vec<Value>)>;
    let mut data: Vec<(String, Paragraphs)> = Vec::new();
    for e in examples {
        if data.last().map(|d| &d.0) != Some(&e.title) {
            data.push((e.title.clone(), Vec::new()));
        }
        let paras = &mut data.last_mut().unwrap().1;
        if paras.last().map(|p| &p.0) != Some(&e.context) {
            paras.push((e.context.clone(), Vec::new()));
        }
        let answers: Vec<Value> = e.answers.iter().map(|a| json!({"text": a.text, "answer_start": a.start})).collect();
        let mut q = json!({"id": e.id, "question": e.question, "answers": answers});
        if v2 {
            q["is_impossible"] = json!(e.is_impossible);
        }
        paras.last_mut().unwrap().1.push(q);
    }
    let data: Vec<Value> = data
        .into_iter()
        .map(|(title, paras)| json!({"title": title, "paragraphs": paras.into_iter().map(|(c, q)| json!({"context": c, "qas": q})).collect::<Vec<_>>()}))
        .collect();
    json!({"version": if v2 { "v2.0" } else { "1.1" }, "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(answers: &str) -> String {
        format!(r#"{{"version":"1.1","data":[{{"title":"T","paragraphs":[{{"context":"接龙 is a word game played in 北京.","qas":[{{"id":"q1","question":"Where?","answers":{answers}}}]}}]}}]}}"#)
    }

    #[test]
    fn squad_reads_char_offsets_and_round_trips() {
        let ex = parse_squad(&file(r#"[{"text":"北京","answer_start":28}]"#), Path::new("s.json")).unwrap();
        assert_eq!(ex[0].answers[0], Answer { text: "北京".into(), start: 28 });
        assert_eq!(ex[0].answers[0].end(), 30);
        let again = parse_squad(&to_squad_json(&ex).to_string(), Path::new("s.json")).unwrap();
        assert_eq!(again, ex);
    }

    #[test]
    fn squad_rejects_bad_spans_naming_the_question() {
        let e = parse_squad(&file(r#"[{"text":"北京","answer_start":29}]"#), Path::new("s.json")).unwrap_err().to_string();
        assert!(e.contains("question q1") && e.contains("points at"), "{e}");
        let e = parse_squad(&file(r#"[{"text":"北京","answer_start":40}]"#), Path::new("s.json")).unwrap_err().to_string();
        assert!(e.contains("question q1") && e.contains("outside"), "{e}");
        // Byte offsets (a common mistake) are caught: 北 is at byte 32.
        let e = parse_squad(&file(r#"[{"text":"北京","answer_start":32}]"#), Path::new("s.json")).unwrap_err().to_string();
        assert!(e.contains("question q1"), "{e}");
        let e = parse_squad(&file("[]"), Path::new("s.json")).unwrap_err().to_string();
        assert!(e.contains("is_impossible"), "{e}");
    }
}
