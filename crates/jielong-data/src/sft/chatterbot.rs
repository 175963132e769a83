//! chatterbot-corpus's YAML dialogues as conversations for `jielong sft`.
//!
//! A corpus file (`chatterbot_corpus/data/{english,chinese,…}/*.yml` in PyPI
//! `chatterbot-corpus==1.3.3`) holds `categories` and `conversations`: each conversation a list of
//! utterances that alternate between two speakers, the first one asking. The first speaker
//! becomes the user, the second the assistant; a conversation that ends on the user's turn loses
//! that last line (there is no reply to learn), and one with no reply at all is reported, not
//! silently dropped. Scalars that YAML reads as numbers or booleans (`- - 42`) are kept as the
//! text they were written as.

use jielong_core::{Error, Result};
use jielong_tokenizer::Message;
use std::path::Path;
use yaml_rust2::{Yaml, YamlLoader};

/// The conversations of one YAML file, and what could not be used.
#[derive(Debug, Default, PartialEq)]
pub struct ChatterbotFile {
    pub conversations: Vec<Vec<Message>>,
    /// (index of the conversation in the file, 0-based; why) for those left out.
    pub skipped: Vec<(usize, String)>,
    /// Trailing user lines dropped because no reply followed them.
    pub dropped_trailing: usize,
}

/// Parse one chatterbot-corpus YAML text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<ChatterbotFile> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| Error::input(format!("{origin}: not YAML: {e}")))?;
    let doc = docs.into_iter().next().unwrap_or(Yaml::Null);
    let convs = match &doc["conversations"] {
        Yaml::Array(a) => a,
        Yaml::BadValue => return Err(Error::input(format!("{origin}: no `conversations` list: not a chatterbot-corpus file"))),
        other => return Err(Error::input(format!("{origin}: `conversations` is {}, not a list", kind(other)))),
    };
    let mut out = ChatterbotFile::default();
    for (i, conv) in convs.iter().enumerate() {
        let Yaml::Array(lines) = conv else {
            out.skipped.push((i, format!("a {} instead of a list of lines", kind(conv))));
            continue;
        };
        let mut texts = Vec::with_capacity(lines.len());
        for l in lines {
            match scalar_text(l) {
                Some(t) if !t.trim().is_empty() => texts.push(t),
                Some(_) => {}
                None => {
                    texts.clear();
                    out.skipped.push((i, format!("a line is a {}, not text", kind(l))));
                    break;
                }
            }
        }
        if texts.len() % 2 == 1 && texts.len() > 1 {
            texts.pop();
            out.dropped_trailing += 1;
        }
        if texts.len() < 2 {
            if out.skipped.last().map(|s| s.0) != Some(i) {
                out.skipped.push((i, "no reply: fewer than two lines".into()));
            }
            continue;
        }
        let messages = texts.iter().enumerate().map(|(k, t)| Message::new(if k % 2 == 0 { "user" } else { "assistant" }, t.trim())).collect();
        out.conversations.push(messages);
    }
    Ok(out)
}

/// Read and parse a corpus file.
pub fn read(path: &Path) -> Result<ChatterbotFile> {
    let text = jielong_core::fs::read_to_string(path)?;
    parse(&text, &path.display().to_string())
}

fn scalar_text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn kind(y: &Yaml) -> &'static str {
    match y {
        Yaml::Array(_) => "list",
        Yaml::Hash(_) => "mapping",
        Yaml::Null => "empty value",
        Yaml::BadValue => "missing value",
        Yaml::Alias(_) => "alias",
        _ => "scalar",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(c: &[Message]) -> Vec<&str> {
        c.iter().map(|m| m.role.as_str()).collect()
    }

    #[test]
    fn chatterbot_turns_alternate_user_then_assistant() {
        let y = "categories:\n- greetings\nconversations:\n- - 你好\n  - 嗨\n- - Hello\n  - Hi\n  - How are you?\n  - Fine, thanks.\n";
        let f = parse(y, "g.yml").unwrap();
        assert_eq!(f.conversations.len(), 2);
        assert_eq!(f.conversations[0], vec![Message::new("user", "你好"), Message::new("assistant", "嗨")]);
        assert_eq!(roles(&f.conversations[1]), ["user", "assistant", "user", "assistant"]);
        assert_eq!(f.conversations[1][3].content, "Fine, thanks.");
        assert!(f.skipped.is_empty() && f.dropped_trailing == 0);
    }

    #[test]
    fn chatterbot_trailing_question_is_dropped_and_lone_lines_reported() {
        let y = "conversations:\n- - Are you there?\n  - Yes.\n  - Really?\n- - Only a question\n- - 42\n  - true\n- - a\n  - {x: 1}\n";
        let f = parse(y, "x.yml").unwrap();
        assert_eq!(f.conversations.len(), 2);
        assert_eq!(roles(&f.conversations[0]), ["user", "assistant"]);
        assert_eq!(f.dropped_trailing, 1);
        // numbers and booleans are kept as written text
        assert_eq!(f.conversations[1], vec![Message::new("user", "42"), Message::new("assistant", "true")]);
        assert_eq!(f.skipped.len(), 2, "{:?}", f.skipped);
        assert_eq!(f.skipped[0].0, 1);
        assert!(f.skipped[1].1.contains("mapping"), "{:?}", f.skipped);
    }

    #[test]
    fn chatterbot_refuses_a_file_that_is_not_a_corpus() {
        let e = parse("name: x\n", "n.yml").unwrap_err().to_string();
        assert!(e.contains("no `conversations` list"), "{e}");
        let e = parse("conversations: [unclosed", "b.yml").unwrap_err().to_string();
        assert!(e.contains("not YAML"), "{e}");
        let e = parse("conversations: 3\n", "c.yml").unwrap_err().to_string();
        assert!(e.contains("not a list"), "{e}");
    }
}
