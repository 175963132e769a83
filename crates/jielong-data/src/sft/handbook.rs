//! A built-in instruction set made from Markdown chapters (jielong's own handbook): for every
//! `## section`, a question about its heading answered by the section's opening sentences, in
//! the chapter's language. It is what `jielong quickstart --chat` fine-tunes on, so the
//! quickstart can go from raw text to a model that answers in turns with nothing downloaded.
//!
//! The answers are the handbook's own words, never generated: the first prose paragraph of the
//! section (code blocks, tables, lists and quotes skipped), cut after at most two sentences
//! and about 320 bytes. A chapter's language is its folder (`en/…`, `zh/…`); each language has
//! three question forms, taken in turn so the model does not learn one fixed phrasing.

use jielong_tokenizer::Message;

const EN: [&str; 3] = ["What does the handbook say about {}?", "Explain {} briefly.", "Tell me about {}."];
const ZH: [&str; 3] = ["手册里关于“{}”讲了什么？", "请简单解释：{}。", "说说{}。"];
/// A chapter's closing summary section, asked for as a summary of the chapter.
const SUMMARY: [(&str, &str); 2] = [("In short", "Sum up the chapter “{}”."), ("小结", "总结一下“{}”这一章。")];
const MAX_ANSWER_BYTES: usize = 320;

/// One question-and-answer conversation per section of every chapter; `chapters` holds
/// (path such as `en/08-finetuning.md`, Markdown text).
pub fn instructions(chapters: &[(&str, &str)]) -> Vec<Vec<Message>> {
    let mut out = Vec::new();
    for (path, text) in chapters {
        let forms = if path.starts_with("zh/") { &ZH } else { &EN };
        let title = text.lines().find_map(|l| l.strip_prefix("# ")).map(str::trim).unwrap_or(path);
        for (heading, body) in sections(text) {
            let Some(answer) = answer(body) else { continue };
            let q = match SUMMARY.iter().find(|(h, _)| *h == heading) {
                Some((_, form)) => form.replace("{}", title),
                None => forms[out.len() % forms.len()].replace("{}", heading),
            };
            out.push(vec![Message::new("user", &q), Message::new("assistant", &answer)]);
        }
    }
    out
}

/// (heading, body) of every `## ` section.
fn sections(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut current: Option<(&str, usize)> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if let Some(h) = line.strip_prefix("## ") {
            if let Some((heading, start)) = current.take() {
                out.push((heading, &text[start..offset]));
            }
            current = Some((h.trim(), offset + line.len()));
        } else if line.starts_with("# ") {
            if let Some((heading, start)) = current.take() {
                out.push((heading, &text[start..offset]));
            }
        }
        offset += line.len();
    }
    if let Some((heading, start)) = current {
        out.push((heading, &text[start..]));
    }
    out
}

/// The first prose paragraph of `body`, cut to two sentences and about MAX_ANSWER_BYTES.
fn answer(body: &str) -> Option<String> {
    let mut in_code = false;
    let mut para: Vec<&str> = Vec::new();
    for line in body.lines() {
        let l = line.trim();
        if l.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let prose = !l.is_empty() && !l.starts_with(['#', '|', '-', '*', '>', '<', '!']) && !l.starts_with(|c: char| c.is_ascii_digit() && l.contains(". "));
        if prose {
            para.push(l);
        } else if !para.is_empty() {
            break;
        }
    }
    if para.is_empty() {
        return None;
    }
    // Chinese lines join without a space, English ones with one.
    let mut joined = String::new();
    for l in para {
        let cjk_seam = joined.ends_with(|c: char| !c.is_ascii()) && l.starts_with(|c: char| !c.is_ascii());
        if !joined.is_empty() && !cjk_seam {
            joined.push(' ');
        }
        joined.push_str(l);
    }
    let mut answer = String::new();
    for s in jielong_text::segment::sentences(&joined).into_iter().take(2) {
        if !answer.is_empty() && answer.len() + s.len() > MAX_ANSWER_BYTES {
            break;
        }
        if !answer.is_empty() && !answer.ends_with(|c: char| !c.is_ascii()) {
            answer.push(' ');
        }
        answer.push_str(s);
    }
    (!answer.is_empty()).then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN_CH: &str = "# Fine-tuning\n\nIntro that has no section.\n\n## LoRA\n\nLoRA trains two small matrices.\nThe base stays frozen. A third sentence is left out.\n\nSecond paragraph.\n\n## Code only\n\n```toml\n[train]\n```\n\n- a list\n\n## In short\n\n| a | b |\n|---|---|\n\nFine-tuning adapts a model.\n";
    const ZH_CH: &str = "# 第八章 微调\n\n## 迁移学习\n\n迁移学习的核心假设是：表示可以迁移。\n下游任务只需要再走一小步。还有第三句。\n";

    #[test]
    fn handbook_instructions_answer_each_section_with_its_first_sentences() {
        let c = instructions(&[("en/08-finetuning.md", EN_CH), ("zh/08-finetuning.md", ZH_CH)]);
        let pairs: Vec<(&str, &str)> = c.iter().map(|m| (m[0].content.as_str(), m[1].content.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("What does the handbook say about LoRA?", "LoRA trains two small matrices. The base stays frozen."),
                ("Sum up the chapter “Fine-tuning”.", "Fine-tuning adapts a model."),
                ("说说迁移学习。", "迁移学习的核心假设是：表示可以迁移。下游任务只需要再走一小步。"),
            ]
        );
        assert!(c.iter().all(|m| m[0].role == "user" && m[1].role == "assistant"));
    }

    #[test]
    fn handbook_answers_stop_at_the_byte_budget() {
        let long = format!("## H\n\n{}. Short one.\n", "word ".repeat(80).trim());
        let c = instructions(&[("en/x.md", &long)]);
        assert_eq!(c[0][1].content, format!("{}.", "word ".repeat(80).trim()), "the first sentence is kept even when long; the second would pass the budget");
    }
}
