//! Decoding a seq2seq model through the shared engine: each source is encoded once into a
//! decoding state (`Seq2seq::encode`), and the decoder continues from `<|endoftext|>` (the
//! start token) until it writes `<|endoftext|>` again (the end token) or `max_tokens`.
//! Greedy decoding runs every source of a batch in one forward pass per step; beam search
//! forks the encoded state per beam (`beam::beam_search_from`).

use crate::beam::{beam_search_from, BeamOptions};
use crate::engine::{Engine, Sequence};
use candle_core::Device;
use jielong_core::{Error, Result};
use jielong_models::Seq2seq;

/// Start and end token, and how long an output may grow.
#[derive(Debug, Clone, Copy)]
pub struct Seq2seqDecode {
    pub bos: u32,
    pub eos: u32,
    pub max_tokens: usize,
    /// 1 = greedy; more = beam search with this many beams.
    pub beams: usize,
}

/// The output ids of every source (without the end token).
pub fn decode_batch(model: &dyn Seq2seq, sources: &[Vec<u32>], opts: &Seq2seqDecode) -> Result<Vec<Vec<u32>>> {
    if sources.iter().any(|s| s.is_empty()) {
        return Err(Error::input("a source is empty: a seq2seq model needs at least one source token"));
    }
    let engine = Engine::new(model.decoder(), &Device::Cpu);
    if opts.beams > 1 {
        return sources
            .iter()
            .map(|src| {
                let seq = engine.sequence_with_state(vec![opts.bos], model.encode(src)?)?;
                let beam = BeamOptions { beams: opts.beams, max_tokens: opts.max_tokens, length_penalty: 1.0, early_stopping: true, stop_ids: vec![opts.eos], no_repeat_ngram: 0 };
                Ok(beam_search_from(&engine, seq, &beam)?.into_iter().next().map(|h| h.tokens).unwrap_or_default())
            })
            .collect();
    }
    let mut seqs: Vec<Sequence> = sources.iter().map(|src| engine.sequence_with_state(vec![opts.bos], model.encode(src)?)).collect::<Result<_>>()?;
    let mut done = vec![false; seqs.len()];
    for _ in 0..opts.max_tokens {
        let live: Vec<usize> = (0..seqs.len()).filter(|&i| !done[i]).collect();
        if live.is_empty() {
            break;
        }
        let rows = {
            let mut batch: Vec<&mut Sequence> = seqs.iter_mut().enumerate().filter(|(i, _)| !done[*i]).map(|(_, s)| s).collect();
            engine.step(&mut batch)?
        };
        for (&i, row) in live.iter().zip(&rows) {
            let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(t, _)| t as u32).unwrap_or(opts.eos);
            if best == opts.eos {
                done[i] = true;
            } else {
                seqs[i].push(best);
            }
        }
    }
    Ok(seqs.iter().map(|s| s.generated().to_vec()).collect())
}

/// What `jielong eval` reports for a seq2seq model on pairs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Seq2seqScores {
    pub n: usize,
    /// Share of outputs equal to their reference (as text), 0–1.
    pub exact_match: f64,
    /// Tokens equal to the reference's token at the same position, over the longer of the
    /// two lengths, summed over the corpus (a too long or too short output loses), 0–1.
    pub token_accuracy: f64,
    /// Corpus BLEU (sacrebleu's default), 0–100.
    pub bleu: f64,
    pub bleu_precisions: [f64; 4],
    pub brevity_penalty: f64,
    /// "13a" or "zh".
    pub bleu_tokenize: &'static str,
    /// Exact match by source length in tokens: (length, pairs, exact match).
    pub by_source_length: Vec<(usize, usize, f64)>,
}

/// Decode every source (greedy when `opts.beams` is 1) and score the outputs against the
/// targets. Returns the scores and the decoded texts.
pub fn evaluate_pairs(model: &dyn Seq2seq, tok: &jielong_tokenizer::Tokenizer, sources: &[String], targets: &[String], opts: &Seq2seqDecode) -> Result<(Seq2seqScores, Vec<String>)> {
    let src_ids: Vec<Vec<u32>> = sources.iter().map(|s| tok.encode(s)).collect::<Result<_>>()?;
    let mut out_ids = Vec::with_capacity(sources.len());
    for chunk in src_ids.chunks(64) {
        out_ids.extend(decode_batch(model, chunk, opts)?);
    }
    let hyps: Vec<String> = out_ids.iter().map(|ids| tok.decode(ids)).collect::<Result<_>>()?;
    let (mut exact, mut tok_ok, mut tok_all) = (0usize, 0usize, 0usize);
    let mut by_len: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
    for ((h, r), (hid, sid)) in hyps.iter().zip(targets).zip(out_ids.iter().zip(&src_ids)) {
        let hit = h == r;
        exact += hit as usize;
        let rid = tok.encode(r)?;
        tok_ok += hid.iter().zip(&rid).filter(|(a, b)| a == b).count();
        tok_all += hid.len().max(rid.len());
        let e = by_len.entry(sid.len()).or_default();
        e.0 += 1;
        e.1 += hit as usize;
    }
    let tokenize = crate::bleu::BleuTokenize::for_references(targets);
    let bleu = crate::bleu::corpus_bleu(&hyps, targets, tokenize);
    let n = sources.len();
    let scores = Seq2seqScores {
        n,
        exact_match: exact as f64 / n.max(1) as f64,
        token_accuracy: tok_ok as f64 / tok_all.max(1) as f64,
        bleu: bleu.score,
        bleu_precisions: bleu.precisions,
        brevity_penalty: bleu.brevity_penalty,
        bleu_tokenize: tokenize.name(),
        by_source_length: by_len.into_iter().map(|(l, (k, e))| (l, k, e as f64 / k as f64)).collect(),
    };
    Ok((scores, hyps))
}
