//! The engine against recomputation: cached decoding must give the logits of a full forward pass
//! over the whole sequence, for single sequences and for batches of different lengths; beam
//! search must find the most probable sequence where the search space can be enumerated.

use candle_core::{Device, Tensor};
use jielong_generate::sampler::SamplingConfig;
use jielong_generate::{beam_search, generate, BeamOptions, Engine, GenOptions};
use jielong_models::{CausalLm, Gpt, GptConfig};
use jielong_nn::{ParamStore, PositionEncoding};

fn model(pos: PositionEncoding, vocab: usize, max_seq_len: usize, seed: u64) -> Gpt {
    let cfg = GptConfig {
        vocab_size: vocab,
        n_layer: 2,
        n_head: 2,
        n_embd: 32,
        max_seq_len,
        dropout: 0.0,
        pos_encoding: pos,
        ..GptConfig::tiny()
    };
    Gpt::new(&cfg, ParamStore::new(seed).var_builder(&Device::Cpu)).unwrap()
}

/// Logits of the last position, recomputed from scratch over the whole sequence.
fn full_last(m: &Gpt, ids: &[u32]) -> Vec<f32> {
    let l = m.logits(&Tensor::new(ids, &Device::Cpu).unwrap().unsqueeze(0).unwrap()).unwrap();
    l.squeeze(0).unwrap().get(ids.len() - 1).unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn engine_cached_logits_equal_recomputation_for_64_steps() {
    for pos in [PositionEncoding::Learned, PositionEncoding::Sinusoidal, PositionEncoding::Rope] {
        let m = model(pos, 61, 96, 1);
        let engine = Engine::new(&m, &Device::Cpu);
        let mut seq = engine.sequence(vec![3, 14, 15, 9, 26]).unwrap();
        let mut worst = 0f32;
        for step in 0..70 {
            let cached = engine.step(&mut [&mut seq]).unwrap().remove(0);
            let full = full_last(&m, &seq.tokens);
            worst = worst.max(max_diff(&cached, &full));
            // A deterministic but not constant continuation.
            seq.push(((step * 7 + 3) % 61) as u32);
        }
        assert!(worst <= 1e-4, "{pos:?}: cached vs recomputed logits differ by {worst}");
        assert_eq!(seq.n_cached(), seq.tokens.len() - 1);
    }
}

#[test]
fn engine_batches_sequences_of_different_lengths() {
    for pos in [PositionEncoding::Learned, PositionEncoding::Rope] {
        let m = model(pos, 61, 96, 2);
        let engine = Engine::new(&m, &Device::Cpu);
        let prompts: Vec<Vec<u32>> = vec![vec![1], vec![5, 6, 7, 8, 9, 10, 11], vec![42, 43, 44]];
        let mut seqs: Vec<_> = prompts.iter().map(|p| engine.sequence(p.clone()).unwrap()).collect();
        let mut worst = 0f32;
        for step in 0..64 {
            let rows = {
                let mut batch: Vec<_> = seqs.iter_mut().collect();
                engine.step(&mut batch).unwrap()
            };
            for (i, (row, seq)) in rows.iter().zip(&mut seqs).enumerate() {
                worst = worst.max(max_diff(row, &full_last(&m, &seq.tokens)));
                seq.push(((step * 5 + i * 11) % 61) as u32);
            }
        }
        assert!(worst <= 1e-4, "{pos:?}: batched cached logits differ by {worst}");
        // And the same through the recomputing path.
        let slow = Engine::new(&m, &Device::Cpu).without_cache();
        let mut batch: Vec<_> = seqs.iter_mut().collect();
        let rows = slow.step(&mut batch).unwrap();
        for (row, seq) in rows.iter().zip(&seqs) {
            assert!(max_diff(row, &full_last(&m, &seq.tokens)) <= 1e-4);
        }
    }
}

#[test]
fn engine_shifts_the_window_past_the_context_and_rejects_bad_prompts() {
    let m = model(PositionEncoding::Learned, 61, 16, 3);
    let engine = Engine::new(&m, &Device::Cpu);
    let mut seq = engine.sequence((0..10).collect()).unwrap();
    for i in 0..30 {
        let row = engine.step(&mut [&mut seq]).unwrap().remove(0);
        assert!(row.iter().all(|x| x.is_finite()));
        seq.push(i % 61);
    }
    assert!(seq.n_shifts >= 2, "a 40-token sequence in a 16-token window must shift");
    // After a shift the logits are those of the kept window, recomputed.
    assert!(engine.sequence(vec![]).unwrap_err().is_user_error());
    assert!(engine.sequence(vec![61]).unwrap_err().to_string().contains("outside"));
}

#[test]
fn greedy_generation_takes_the_argmax_of_recomputed_logits() {
    let m = model(PositionEncoding::Learned, 61, 64, 4);
    let engine = Engine::new(&m, &Device::Cpu);
    let prompt = vec![7u32, 8, 9];
    let mut chains = vec![SamplingConfig::greedy().build(&prompt, 0).unwrap()];
    let out = generate(&engine, vec![engine.sequence(prompt.clone()).unwrap()], &mut chains, &GenOptions { max_tokens: 20, stop_ids: vec![] }, &mut |_, _, _| true).unwrap();
    let mut ids = prompt.clone();
    for &tok in out[0].tokens() {
        let row = full_last(&m, &ids);
        let argmax = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0;
        assert_eq!(tok as usize, argmax);
        ids.push(tok);
    }
    assert_eq!(out[0].tokens().len(), 20);
}

/// log p(continuation | prompt), recomputed.
fn seq_logprob(m: &Gpt, prompt: &[u32], cont: &[u32]) -> f64 {
    let mut ids = prompt.to_vec();
    let mut total = 0f64;
    for &tok in cont {
        let row = full_last(m, &ids);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max + row.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        total += row[tok as usize] as f64 - lse;
        ids.push(tok);
    }
    total
}

#[test]
fn beam_search_with_enough_beams_finds_the_most_probable_sequence() {
    // |V| = 5: every continuation of length 3 is enumerable (125). A beam of |V|^(L−1) keeps
    // every prefix, so beam search must be exact; with |V| beams it is exact for length 2.
    let v = 5u32;
    for (len, beams, seed) in [(2usize, 5usize, 5u64), (3, 25, 6), (3, 25, 7)] {
        let m = model(PositionEncoding::Learned, v as usize, 16, seed);
        let engine = Engine::new(&m, &Device::Cpu);
        let prompt = vec![1u32, 3];
        let mut best = (f64::NEG_INFINITY, vec![]);
        let mut all = vec![vec![]];
        for _ in 0..len {
            all = all.into_iter().flat_map(|p: Vec<u32>| (0..v).map(move |t| [p.clone(), vec![t]].concat())).collect();
        }
        for cont in &all {
            let lp = seq_logprob(&m, &prompt, cont);
            if lp > best.0 {
                best = (lp, cont.clone());
            }
        }
        let opts = BeamOptions { beams, max_tokens: len, length_penalty: 1.0, early_stopping: false, stop_ids: vec![], no_repeat_ngram: 0 };
        let hyps = beam_search(&engine, prompt.clone(), &opts).unwrap();
        assert_eq!(hyps[0].tokens, best.1, "length {len}, {beams} beams");
        assert!((hyps[0].logprob - best.0).abs() < 1e-4, "{} vs {}", hyps[0].logprob, best.0);
        // n-best comes sorted.
        assert!(hyps.windows(2).all(|w| w[0].score >= w[1].score));
    }
    let m = model(PositionEncoding::Learned, 5, 16, 5);
    let engine = Engine::new(&m, &Device::Cpu);
    let zero = BeamOptions { beams: 0, max_tokens: 2, length_penalty: 1.0, early_stopping: false, stop_ids: vec![], no_repeat_ngram: 0 };
    assert!(beam_search(&engine, vec![1], &zero).unwrap_err().is_user_error());
}

#[test]
fn beam_search_ends_hypotheses_at_the_stop_id() {
    let m = model(PositionEncoding::Learned, 7, 32, 8);
    let engine = Engine::new(&m, &Device::Cpu);
    // Every token but 0 and the stop id 6: hypotheses either end with 6 or run to max_tokens.
    let opts = BeamOptions { beams: 3, max_tokens: 8, length_penalty: 1.0, early_stopping: true, stop_ids: vec![6], no_repeat_ngram: 2 };
    let hyps = beam_search(&engine, vec![2, 3], &opts).unwrap();
    assert!(!hyps.is_empty() && hyps.len() <= 3);
    for h in &hyps {
        assert!(!h.tokens.contains(&6), "the stop id is not part of the output");
        assert!(h.finished || h.tokens.len() == 8);
        // no_repeat_ngram 2: no bigram occurs twice in prompt + output.
        let all = [vec![2, 3], h.tokens.clone()].concat();
        let mut seen = std::collections::HashSet::new();
        assert!(all.windows(2).all(|w| seen.insert(w.to_vec())), "repeated bigram in {all:?}");
    }
}
