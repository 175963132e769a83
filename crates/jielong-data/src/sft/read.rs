//! Reading instruction data: JSONL in the three shapes people have, each line one example.
//!
//! - OpenAI / TRL conversational: `{"messages": [{"role": "system"|"user"|"assistant", "content": …}, …]}`
//! - prompt / completion: `{"prompt": "…", "completion": "…"}` (or both as message lists, TRL's
//!   conversational prompt-completion)
//! - Alpaca: `{"instruction": "…", "input": "…", "output": "…"}` (`input` may be empty or absent)
//!
//! Every shape becomes a conversation of [`Message`]s. A line that is not JSON, has no shape,
//! names an unknown role or has no assistant turn is bad: it is counted and reported with its
//! line number ([`ReadReport::bad`]), never silently dropped, and with `strict` the first one
//! is an error.

use jielong_core::{Error, Result};
use jielong_tokenizer::Message;
use serde_json::Value;
use std::path::Path;

/// The roles a conversation may hold.
pub const ROLES: [&str; 3] = ["system", "user", "assistant"];

/// One conversation and the line it came from (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct ChatExample {
    pub line: usize,
    pub messages: Vec<Message>,
}

/// What a file held.
#[derive(Debug, Default)]
pub struct ReadReport {
    pub examples: Vec<ChatExample>,
    /// (line, what was wrong) for every bad line.
    pub bad: Vec<(usize, String)>,
    /// Non-blank lines read.
    pub lines: usize,
}

impl ReadReport {
    /// "3 of 120 lines skipped (line 4: …; line 9: …; …)", or None when every line was good.
    pub fn bad_summary(&self) -> Option<String> {
        if self.bad.is_empty() {
            return None;
        }
        let shown: Vec<String> = self.bad.iter().take(3).map(|(l, m)| format!("line {l}: {m}")).collect();
        let more = if self.bad.len() > 3 { "; …" } else { "" };
        Some(format!("{} of {} lines skipped ({}{more}); --strict makes them an error", self.bad.len(), self.lines, shown.join("; ")))
    }
}

/// Read a JSONL file of examples. With `strict`, the first bad line is an error; without, bad
/// lines are collected in the report. A file with no good example is always an error.
pub fn read_chat_jsonl(path: &Path, strict: bool) -> Result<ReadReport> {
    let text = jielong_core::fs::read_to_string(path)?;
    let mut report = ReadReport::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        match parse_line(line) {
            Ok(messages) => report.examples.push(ChatExample { line: i + 1, messages }),
            Err(why) if strict => return Err(Error::input(format!("{}:{}: {why}", path.display(), i + 1))),
            Err(why) => report.bad.push((i + 1, why)),
        }
    }
    if report.examples.is_empty() {
        let why = match report.bad.first() {
            Some((l, m)) => format!("{}:{l}: {m}", path.display()),
            None => format!("{}: no examples (the file is empty)", path.display()),
        };
        let n = report.bad.len();
        return Err(Error::input(if n > 1 { format!("{why} (and {} more bad lines; no usable example)", n - 1) } else { why }));
    }
    Ok(report)
}

/// One line → a conversation, or what is wrong with it.
pub fn parse_line(line: &str) -> std::result::Result<Vec<Message>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let text = |k: &str| -> std::result::Result<Option<String>, String> {
        match obj.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{k}` must be a string")),
        }
    };
    let mut messages = if let Some(m) = obj.get("messages") {
        let mut ms = messages_of(m, "messages")?;
        if let Some(sys) = text("system")? {
            ms.insert(0, Message::new("system", &sys));
        }
        ms
    } else if obj.contains_key("prompt") || obj.contains_key("completion") {
        let (p, c) = (obj.get("prompt").ok_or("has `completion` but no `prompt`")?, obj.get("completion").ok_or("has `prompt` but no `completion`")?);
        let mut ms = match p {
            Value::String(s) => vec![Message::new("user", s)],
            other => messages_of(other, "prompt")?,
        };
        match c {
            Value::String(s) => ms.push(Message::new("assistant", s)),
            other => ms.extend(messages_of(other, "completion")?),
        }
        ms
    } else if obj.contains_key("instruction") {
        let instruction = text("instruction")?.unwrap_or_default();
        let input = text("input")?.unwrap_or_default();
        let output = text("output")?.ok_or("an Alpaca example (`instruction`) needs an `output`")?;
        let user = if input.trim().is_empty() { instruction } else { format!("{instruction}\n\n{input}") };
        vec![Message::new("user", &user), Message::new("assistant", &output)]
    } else {
        let keys: Vec<&str> = obj.keys().map(String::as_str).take(5).collect();
        return Err(format!("no `messages`, `prompt`/`completion` or `instruction`/`output` (keys: {keys:?})"));
    };
    for m in &mut messages {
        m.role = m.role.trim().to_string();
    }
    if let Some(m) = messages.iter().find(|m| !ROLES.contains(&m.role.as_str())) {
        return Err(format!("unknown role `{}` (use system, user or assistant)", m.role));
    }
    if !messages.iter().any(|m| m.role == "assistant") {
        return Err("no assistant turn: there is nothing to learn to reply".into());
    }
    Ok(messages)
}

fn messages_of(v: &Value, field: &str) -> std::result::Result<Vec<Message>, String> {
    let list = v.as_array().ok_or_else(|| format!("`{field}` must be a list of {{role, content}} objects"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str).ok_or_else(|| format!("`{field}`[{i}] has no string `role`"))?;
            let content = match m.get("content") {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(format!("`{field}`[{i}] has no string `content`")),
            };
            Ok(Message::new(role, &content))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sft_read_three_shapes_become_conversations() {
        let m = parse_line(r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "你好"}, {"role": "assistant", "content": "Hi."}]}"#).unwrap();
        assert_eq!(m, vec![Message::new("system", "Be brief."), Message::new("user", "你好"), Message::new("assistant", "Hi.")]);
        let p = parse_line(r#"{"prompt": "2+2?", "completion": "4"}"#).unwrap();
        assert_eq!(p, vec![Message::new("user", "2+2?"), Message::new("assistant", "4")]);
        let pc = parse_line(r#"{"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "assistant", "content": "b"}]}"#).unwrap();
        assert_eq!(pc, vec![Message::new("user", "a"), Message::new("assistant", "b")]);
        let a = parse_line(r#"{"instruction": "Translate.", "input": "cat", "output": "猫"}"#).unwrap();
        assert_eq!(a, vec![Message::new("user", "Translate.\n\ncat"), Message::new("assistant", "猫")]);
        let a = parse_line(r#"{"instruction": "Say hi.", "input": "", "output": "hi"}"#).unwrap();
        assert_eq!(a[0].content, "Say hi.");
    }

    #[test]
    fn sft_read_bad_lines_say_what_is_wrong() {
        let e = |l: &str| parse_line(l).unwrap_err();
        assert!(e(r#"{"messages": [{"role": "user", "content": "hi"}]}"#).contains("no assistant turn"));
        assert!(e(r#"{"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}"#).contains("unknown role `robot`"));
        assert!(e("{not json").contains("not JSON"));
        assert!(e(r#"{"text": "plain"}"#).contains("no `messages`"));
        assert!(e(r#"{"prompt": "x"}"#).contains("no `completion`"));
    }

    #[test]
    fn sft_read_counts_bad_lines_and_strict_stops_at_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.jsonl");
        let good = r#"{"prompt": "a", "completion": "b"}"#;
        std::fs::write(&p, format!("{good}\n\n{{oops\n{good}\n{{\"messages\": [{{\"role\": \"user\", \"content\": \"x\"}}]}}\n")).unwrap();
        let r = read_chat_jsonl(&p, false).unwrap();
        assert_eq!((r.examples.len(), r.bad.len(), r.lines), (2, 2, 4));
        assert_eq!(r.examples[1].line, 4);
        let s = r.bad_summary().unwrap();
        assert!(s.starts_with("2 of 4 lines skipped") && s.contains("line 3: not JSON") && s.contains("line 5: no assistant turn"), "{s}");
        let e = read_chat_jsonl(&p, true).unwrap_err();
        assert!(e.is_user_error() && e.to_string().contains("d.jsonl:3: not JSON"), "{e}");
        std::fs::write(&p, "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n").unwrap();
        let e = read_chat_jsonl(&p, false).unwrap_err();
        assert!(e.to_string().contains(":1: no assistant turn"), "{e}");
    }
}
