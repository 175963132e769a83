//! Labelled text for sequence classification (`jielong finetune --task classify`): JSONL
//! lines `{"text": …, "label": …}` or, for sentence pairs, `{"text": …, "text_pair": …,
//! "label": …}`. A label is a string or a number (kept as its text, so `1` and `"1"` are the
//! same label). The label set is the sorted distinct labels of the training file; it is saved
//! with the fine-tuned model and fixes the order of the head's outputs.
//!
//! Bad lines are errors naming the file and line: a label missing or null, a text missing or
//! not a string. A classifier trained on one label set cannot score a label it never saw, so
//! evaluation data with an unseen label is refused with the labels it knows.

use jielong_core::{Error, Result};
use std::collections::BTreeSet;
use std::path::Path;

/// One labelled example.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub text: String,
    pub text_pair: Option<String>,
    /// None when the file gives no label (prediction inputs).
    pub label: Option<String>,
    /// "FILE:LINE", for messages.
    pub source: String,
}

/// Read a classification JSONL file; `need_label`: a line without a label is an error.
pub fn read_examples(path: &Path, need_label: bool) -> Result<Vec<Example>> {
    let text = jielong_core::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("line {}", i + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::format(path, format!("{}: not JSON ({e})", at())))?;
        let obj = v.as_object().ok_or_else(|| Error::format(path, format!("{}: not a JSON object; write {{\"text\": …, \"label\": …}}", at())))?;
        let text = match obj.get("text") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => return Err(Error::format(path, format!("{}: no \"text\" string; write {{\"text\": …, \"label\": …}}", at()))),
        };
        let text_pair = match obj.get("text_pair") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Error::format(path, format!("{}: \"text_pair\" must be a string", at()))),
        };
        let label = match obj.get("label") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
            Some(other) => return Err(Error::format(path, format!("{}: label {other} is not a string or number", at()))),
        };
        if need_label && label.is_none() {
            return Err(Error::format(path, format!("{}: the label is missing; every line needs \"label\" (a string or number)", at())));
        }
        out.push(Example { text, text_pair, label, source: format!("{}:{}", path.display(), i + 1) });
    }
    if out.is_empty() {
        return Err(Error::input(format!("{}: no examples (expected JSON lines {{\"text\": …, \"label\": …}})", path.display())));
    }
    Ok(out)
}

/// The sorted distinct labels of `examples`.
pub fn label_set(examples: &[Example]) -> Vec<String> {
    examples.iter().filter_map(|e| e.label.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// Each example's label index in `labels`; an error naming the first label not among them.
pub fn label_ids(examples: &[Example], labels: &[String], what: &str) -> Result<Vec<u32>> {
    examples
        .iter()
        .map(|e| {
            let l = e.label.as_deref().ok_or_else(|| Error::input(format!("{}: the label is missing", e.source)))?;
            labels.iter().position(|k| k == l).map(|i| i as u32).ok_or_else(|| {
                Error::input(format!("{}: label {l:?} was not among the labels the classifier was trained on ({}) — {what}", e.source, labels.join(", ")))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_data_reads_pairs_numbers_and_refuses_missing_labels() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        std::fs::write(&p, "{\"text\": \"好\", \"label\": 1}\n\n{\"text\": \"a\", \"text_pair\": \"b\", \"label\": \"0\"}\n").unwrap();
        let ex = read_examples(&p, true).unwrap();
        assert_eq!(ex.len(), 2);
        assert_eq!(ex[1].text_pair.as_deref(), Some("b"));
        assert_eq!(label_set(&ex), vec!["0".to_string(), "1".to_string()]);
        assert_eq!(label_ids(&ex, &label_set(&ex), "").unwrap(), vec![1, 0]);
        assert!(label_ids(&ex, &["0".to_string()], "x").unwrap_err().to_string().contains("\"1\" was not among"));
        std::fs::write(&p, "{\"text\": \"好\"}\n").unwrap();
        let e = read_examples(&p, true).unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("label is missing"), "{e}");
        assert!(read_examples(&p, false).unwrap()[0].label.is_none());
    }
}
