//! A conversation → token ids and the loss mask of supervised fine-tuning.
//!
//! The conversation is rendered through its chat template; which characters belong to the
//! assistant is found by rendering prefixes, so that it works for any template without
//! markers in it: for the i-th message, an assistant turn, the conversation before it rendered
//! with the generation prompt (`P`) must be a prefix of the conversation through it (`Q`), and
//! the assistant's part is `Q[|P|..]` up to and including the template's end-of-turn string
//! (`eos_token`: `<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`), so that the model learns to end
//! its turn. The text is tokenized once, whole, and a token carries loss when its bytes overlap
//! an assistant span (as transformers' `return_assistant_tokens_mask` decides from the
//! `{% generation %}` spans, which TRL's `assistant_only_loss` uses: the fixture test checks
//! the two agree).

use super::IGNORE;
use jielong_tokenizer::{ChatTemplate, Message, Tokenizer};
use std::ops::Range;

/// Which tokens carry loss (`--loss-on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossOn {
    /// The assistant's tokens, its end-of-turn token included.
    Assistant,
    /// Every token (plain language modelling on the rendered text, to compare).
    All,
}

/// One encoded example: ids, and for each id whether predicting it carries loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub loss: Vec<bool>,
}

impl Encoded {
    /// Tokens that carry loss (as targets: the first token never does, nothing predicts it).
    pub fn n_loss(&self) -> usize {
        self.loss.iter().skip(1).filter(|&&l| l).count()
    }

    /// (inputs, targets) of length `len` (≥ ids − 1): targets are the next ids where they carry
    /// loss and [`IGNORE`] elsewhere; both padded with `pad` / [`IGNORE`].
    pub fn row(&self, len: usize, pad: u32) -> (Vec<u32>, Vec<u32>) {
        let n = self.ids.len().saturating_sub(1);
        let mut inputs = self.ids[..n].to_vec();
        let mut targets: Vec<u32> = (1..=n).map(|k| if self.loss[k] { self.ids[k] } else { IGNORE }).collect();
        inputs.resize(len, pad);
        targets.resize(len, IGNORE);
        (inputs, targets)
    }
}

/// The rendered conversation and the byte spans of its assistant turns.
pub fn render_spans(template: &ChatTemplate, messages: &[Message]) -> Result<(String, Vec<Range<usize>>), String> {
    let render = |ms: &[Message], gen: bool| template.render(ms, gen).map_err(|e| e.to_string());
    let full = render(messages, false)?;
    let mut spans = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let p = render(&messages[..i], true)?;
        let q = render(&messages[..=i], false)?;
        if !q.starts_with(&p) || !full.starts_with(&q) {
            return Err(format!(
                "chat template {} does not render conversations turn by turn (the text before assistant turn {} changes when the turn is added), so the assistant's tokens cannot be found",
                template.origin,
                i + 1
            ));
        }
        let turn = &q[p.len()..];
        let eot = template.eos_token.as_str();
        let end = match (!eot.is_empty()).then(|| turn.find(eot)).flatten() {
            Some(at) => p.len() + at + eot.len(),
            None => q.len(),
        };
        spans.push(p.len()..end);
    }
    Ok((full, spans))
}

/// Encode one conversation: the rendered text's ids and its loss mask.
pub fn encode(template: &ChatTemplate, tk: &Tokenizer, messages: &[Message], loss_on: LossOn) -> Result<Encoded, String> {
    let (text, spans) = render_spans(template, messages)?;
    let (ids, offsets) = tk.encode_with_offsets(&text).map_err(|e| e.to_string())?;
    let loss = match loss_on {
        LossOn::All => vec![true; ids.len()],
        LossOn::Assistant => offsets.iter().map(|&(s, e)| spans.iter().any(|sp| s < sp.end && e > sp.start)).collect(),
    };
    Ok(Encoded { ids, loss })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jielong_tokenizer::TokenizerKind;

    fn tokenizer(extra: &[&str]) -> Tokenizer {
        let text = "the user asks and the assistant replies. 你好，世界。 hello world reply with the reverse";
        let tk = Tokenizer::train(TokenizerKind::Bpe, 400, std::iter::repeat_n(text, 20)).unwrap();
        tk.with_special_tokens(extra).unwrap().0
    }

    fn conv() -> Vec<Message> {
        vec![Message::new("system", "Be brief."), Message::new("user", "hello"), Message::new("assistant", "world"), Message::new("user", "你好"), Message::new("assistant", "世界")]
    }

    #[test]
    fn sft_masks_exactly_the_assistant_turns_and_their_end_of_turn() {
        let t = ChatTemplate::named("chatml").unwrap();
        let tk = tokenizer(&["<|im_start|>", "<|im_end|>"]);
        let e = encode(&t, &tk, &conv(), LossOn::Assistant).unwrap();
        let masked: String = e.ids.iter().zip(&e.loss).filter(|(_, &l)| l).map(|(&id, _)| tk.decode(&[id]).unwrap()).collect();
        assert_eq!(masked, "world<|im_end|>世界<|im_end|>");
        let im_end = tk.inner().token_to_id("<|im_end|>").unwrap();
        // The end-of-turn ids that carry loss are exactly the assistant turns' (2 of 5).
        let ends: Vec<bool> = e.ids.iter().zip(&e.loss).filter(|(&id, _)| id == im_end).map(|(_, &l)| l).collect();
        assert_eq!(ends, [false, false, true, false, true]);
        let all = encode(&t, &tk, &conv(), LossOn::All).unwrap();
        assert!(all.loss.iter().all(|&l| l) && all.ids == e.ids);
    }

    #[test]
    fn sft_rows_shift_targets_and_pad_with_ignore() {
        let e = Encoded { ids: vec![5, 6, 7, 8], loss: vec![false, false, true, true] };
        assert_eq!(e.n_loss(), 2);
        let (i, t) = e.row(5, 0);
        assert_eq!(i, [5, 6, 7, 0, 0]);
        assert_eq!(t, [IGNORE, 7, 8, IGNORE, IGNORE]);
    }

    #[test]
    fn sft_template_that_rewrites_history_is_named() {
        // A template that prints the number of messages first changes its prefix per turn.
        let t = ChatTemplate::new("{{ messages | length }}{% for m in messages %}{{ m.content }}{% endfor %}", "count.jinja").unwrap();
        let e = render_spans(&t, &conv()).unwrap_err();
        assert!(e.contains("count.jinja") && e.contains("turn by turn"), "{e}");
    }
}
