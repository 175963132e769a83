//! Token generation for a batch of sequences: every live sequence advances one token per
//! forward pass, each with its own sampler chain; a sequence leaves the batch when it produces a
//! stop id, when the caller says stop (a stop string), or at `max_tokens`.

use crate::engine::{Engine, Sequence};
use crate::sampler::Chain;
use jielong_core::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop id (end of text) was produced.
    Stop,
    /// The caller stopped it (a stop string appeared).
    StopString,
    /// `max_tokens` reached.
    Length,
}

impl Finish {
    /// The OpenAI API's name for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Finish::Stop | Finish::StopString => "stop",
            Finish::Length => "length",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub max_tokens: usize,
    /// Ids that end a sequence (not emitted): the tokenizer's end-of-text.
    pub stop_ids: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub sequence: Sequence,
    pub finish: Finish,
}

impl Output {
    pub fn tokens(&self) -> &[u32] {
        self.sequence.generated()
    }
}

/// Continue every sequence. `on_token(i, id, chain)` sees each emitted id of sequence `i` (the
/// chain holds its explain views) and returns false to stop that sequence.
pub fn generate(
    engine: &Engine,
    seqs: Vec<Sequence>,
    chains: &mut [Chain],
    opts: &GenOptions,
    on_token: &mut dyn FnMut(usize, u32, &Chain) -> bool,
) -> Result<Vec<Output>> {
    assert_eq!(seqs.len(), chains.len(), "one chain per sequence");
    let mut seqs = seqs;
    let mut finish: Vec<Option<Finish>> = vec![None; seqs.len()];
    if opts.max_tokens == 0 {
        finish.iter_mut().for_each(|f| *f = Some(Finish::Length));
    }
    loop {
        let live: Vec<usize> = (0..seqs.len()).filter(|&i| finish[i].is_none()).collect();
        if live.is_empty() {
            break;
        }
        let logits = {
            let mut batch: Vec<&mut Sequence> =
                seqs.iter_mut().enumerate().filter(|(i, _)| finish[*i].is_none()).map(|(_, s)| s).collect();
            engine.step(&mut batch)?
        };
        for (row, &i) in logits.iter().zip(&live) {
            let id = chains[i].sample(row);
            if opts.stop_ids.contains(&id) {
                finish[i] = Some(Finish::Stop);
                continue;
            }
            seqs[i].push(id);
            if !on_token(i, id, &chains[i]) {
                finish[i] = Some(Finish::StopString);
            } else if seqs[i].generated().len() >= opts.max_tokens {
                finish[i] = Some(Finish::Length);
            }
        }
    }
    Ok(seqs.into_iter().zip(finish).map(|(sequence, f)| Output { sequence, finish: f.expect("finished") }).collect())
}
