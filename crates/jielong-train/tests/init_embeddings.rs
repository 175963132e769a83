//! `train.init_embeddings`: word vectors land in the token embedding table of GPT and Llama
//! (scaled by one factor, other rows untouched), the run that starts from them still resumes
//! exactly, and the wrong tokenizer or width is a clear error.

use candle_core::Device;
use jielong_data::{prepare, PrepareOptions};
use jielong_models::{GptConfig, LlamaConfig, ModelConfig};
use jielong_nn::ParamStore;
use jielong_text::{Document, ReadReport};
use jielong_tokenizer::{Tokenizer, TokenizerKind};
use jielong_train::config::{DataConfig, RunConfig, TrainConfig};
use jielong_train::{init_embeddings, train, Event};
use jielong_vectors::formats::{write, Format};
use jielong_vectors::Embeddings;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const TEXT: &str = "the cat sat on the mat . the dog sat on the log . 小猫坐在垫子上。\n";

fn make_data(dir: &Path, kind: TokenizerKind) -> (PathBuf, Tokenizer) {
    let docs = vec![Document { source: "a".into(), text: TEXT.repeat(60) }];
    let tk = Tokenizer::train(kind, 300, docs.iter().map(|d| d.text.clone())).unwrap();
    let out = dir.join(format!("shards-{kind:?}"));
    prepare(docs, &ReadReport::default(), &tk, &out, &PrepareOptions::default()).unwrap();
    (out, tk)
}

/// Vectors for three words of TEXT (one Chinese) and one word the tokenizer does not have.
fn write_vectors(dir: &Path, dim: usize) -> PathBuf {
    let words: Vec<String> = ["the", "cat", "小猫", "zebra"].iter().map(|s| s.to_string()).collect();
    let data: Vec<f32> = (0..words.len() * dim).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.25).collect();
    let out = dir.join(format!("vectors-{dim}"));
    std::fs::create_dir_all(&out).unwrap();
    write(&out.join(Format::Word2VecText.file_name()), &Embeddings::new(words, dim, data), Format::Word2VecText).unwrap();
    out
}

fn gpt() -> ModelConfig {
    ModelConfig::new(GptConfig { vocab_size: 0, n_layer: 1, n_head: 2, n_embd: 16, max_seq_len: 16, ..GptConfig::tiny() })
}

fn llama() -> ModelConfig {
    let l = LlamaConfig { vocab_size: 0, n_layer: 1, n_head: 2, n_kv_head: 1, n_embd: 16, intermediate_size: 32, max_seq_len: 16, ..LlamaConfig::preset("tiny").unwrap() };
    ModelConfig::new(l)
}

fn table(params: &ParamStore, name: &str) -> Vec<Vec<f32>> {
    let (_, v) = params.vars().into_iter().find(|(n, _)| n == name).unwrap();
    v.as_tensor().to_vec2().unwrap()
}

#[test]
fn init_embeddings_copies_the_rows_of_known_words_in_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let (_, tk) = make_data(dir.path(), TokenizerKind::Word);
    let vectors = write_vectors(dir.path(), 16);
    let (emb, _) = jielong_vectors::formats::load(&vectors).unwrap();
    for mut model in [gpt(), llama()] {
        model.set_vocab_size(tk.vocab_size());
        let params = ParamStore::new(7);
        model.build(params.var_builder(&Device::Cpu)).unwrap();
        let (name, _) = model.token_embedding().unwrap();
        let before = table(&params, name);
        let done = init_embeddings(&params, &model, &tk, &vectors).unwrap();
        assert_eq!(done.covered, 3, "the, cat and 小猫 are tokens; zebra is not");
        assert_eq!(done.rows, tk.vocab_size());
        let after = table(&params, name);
        let index = emb.index();
        for id in 0..tk.vocab_size() {
            let piece = tk.id_to_piece(id as u32).unwrap();
            match index.get(piece.as_str()) {
                Some(&r) => {
                    let want: Vec<f32> = emb.row(r).iter().map(|x| x * done.scale).collect();
                    assert_eq!(after[id], want, "{}: row of {piece:?}", model.family());
                }
                None => assert_eq!(after[id], before[id], "{}: row of {piece:?} must keep its random init", model.family()),
            }
        }
        // The factor gives the copied rows the spread of the random ones (std 0.02).
        assert!(done.scale > 0.0 && done.scale < 0.1, "scale {}", done.scale);
    }
}

#[test]
fn init_embeddings_refuses_a_subword_tokenizer_and_a_wrong_width() {
    let dir = tempfile::tempdir().unwrap();
    let (_, bpe) = make_data(dir.path(), TokenizerKind::Bpe);
    let (_, word) = make_data(dir.path(), TokenizerKind::Word);
    let mut model = gpt();
    model.set_vocab_size(bpe.vocab_size().max(word.vocab_size()));
    let params = ParamStore::new(7);
    model.build(params.var_builder(&Device::Cpu)).unwrap();
    let e = init_embeddings(&params, &model, &bpe, &write_vectors(dir.path(), 16)).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("--kind word"), "{e}");
    let e = init_embeddings(&params, &model, &word, &write_vectors(dir.path(), 8)).unwrap_err();
    assert!(e.is_user_error() && e.to_string().contains("--dim 16") && e.to_string().contains("8 dimensions"), "{e}");
}

fn config(data: &Path, vectors: Option<PathBuf>) -> RunConfig {
    RunConfig {
        data: DataConfig { dir: data.to_path_buf() },
        model: gpt(),
        train: TrainConfig {
            batch_size: 4,
            max_steps: 6,
            warmup_steps: 1,
            learning_rate: 3e-3,
            eval_interval: 3,
            eval_windows: 4,
            checkpoint_interval: 100,
            init_embeddings: vectors,
            ..Default::default()
        },
    }
}

#[test]
fn init_embeddings_run_resumes_exactly_and_differs_from_a_random_start() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = make_data(dir.path(), TokenizerKind::Word);
    let cfg = config(&data, Some(write_vectors(dir.path(), 16)));
    let never = AtomicBool::new(false);
    let mut inits = 0;
    let full = train(&dir.path().join("full"), cfg.clone(), false, &never, &mut |e| {
        if let Event::EmbeddingsInitialized(d) = e {
            assert_eq!(d.covered, 3);
            inits += 1;
        }
    })
    .unwrap();
    assert_eq!(inits, 1);
    let plain = train(&dir.path().join("plain"), config(&data, None), false, &never, &mut |_| {}).unwrap();
    assert_ne!(full.step_losses[0], plain.step_losses[0], "the vectors changed nothing");

    let stop = AtomicBool::new(false);
    let run = dir.path().join("cut");
    let first = train(&run, cfg.clone(), false, &stop, &mut |e| {
        if let Event::Step { step: 3, .. } = e {
            stop.store(true, Ordering::SeqCst);
        }
    })
    .unwrap();
    assert!(first.interrupted);
    let mut reinit = false;
    let resumed = train(&run, cfg, true, &never, &mut |e| reinit |= matches!(e, Event::EmbeddingsInitialized(_))).unwrap();
    assert!(!reinit, "a resumed run must read its table from the checkpoint");
    let all: Vec<(u64, f64)> = first.step_losses.iter().chain(&resumed.step_losses).copied().collect();
    assert_eq!(all, full.step_losses, "resumed losses differ from the uninterrupted run");
}
