//! An n-gram model over tokenizer pieces as a causal LM of the family spine: its logits are
//! ln p of the model's own estimates, decoding with a state gives the same rows as whole-sequence
//! logits, and rewinding or forking a state changes nothing.

use jielong_models::CausalLm;
use jielong_ngram::causal::NgramLm;
use jielong_ngram::units::{SentenceMode, Splitter, UnitKind};
use jielong_ngram::{index_sentences, train, Smoothing, TrainConfig};
use jielong_tokenizer::{Tokenizer, TokenizerKind};

#[test]
fn ngram_causal_lm_logits_match_its_probabilities_and_state_decoding() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ngram/train.txt")).unwrap();
    let tk = Tokenizer::train(TokenizerKind::Bpe, 300, std::iter::once(text.as_str())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tk.save(dir.path()).unwrap();
    let split = Splitter::new(UnitKind::Tokens, Some(dir.path())).unwrap();
    let sentences: Vec<Vec<String>> = SentenceMode::Document.split(&text).iter().map(|d| split.split(d).unwrap()).collect();
    let (vocab, ids) = index_sentences(&sentences, split.seed_vocab(), 0);
    let mut model = train(&ids, vocab, &TrainConfig::new(3, Smoothing::ModifiedKneserNey)).unwrap();
    model.meta_mut().units = "tokens".into();
    let lm = NgramLm::new(model, split.tokenizer().unwrap()).unwrap();
    assert_eq!(lm.vocab_size(), tk.vocab_size());

    let seq = tk.encode("the cat sat on the log .\nthe dog").unwrap();
    let t = seq.len();
    let logits = lm.logits(&candle_core::Tensor::from_vec(seq.clone(), (1, t), &candle_core::Device::Cpu).unwrap()).unwrap();
    let rows: Vec<Vec<Vec<f32>>> = logits.to_vec3().unwrap();
    // Row j is ln p(token | <s>, seq[..=j]) from the model's own backoff search.
    let m = lm.model();
    let unit = |id: u32| m.vocab().id(&tk.id_to_piece(id).unwrap());
    for j in [0, 3, t - 1] {
        let mut ctx = vec![jielong_ngram::vocab::BOS];
        ctx.extend(seq[..=j].iter().map(|&i| unit(i)));
        for probe in [seq[(j + 1) % t], 5, 42] {
            let want = (m.log10_prob(&ctx, unit(probe)) * std::f64::consts::LN_10) as f32;
            assert!((rows[0][j][probe as usize] - want).abs() < 1e-5, "row {j} id {probe}");
        }
    }
    // Decoding one token at a time with a state gives the same rows; a fork after a rewind too.
    let mut state = lm.new_state();
    for (j, &id) in seq.iter().enumerate() {
        let out: Vec<Vec<f32>> = lm.forward_cached(&[&[id]], &mut [&mut *state]).unwrap().to_vec2().unwrap();
        assert_eq!(out[0], rows[0][j], "step {j}");
    }
    assert_eq!(state.rewind(2).unwrap(), 2);
    let mut fork = state.fork();
    let again: Vec<Vec<f32>> = lm.forward_cached(&[&seq[2..4]], &mut [&mut *fork]).unwrap().to_vec2().unwrap();
    assert_eq!(again[0], rows[0][3]);
}
