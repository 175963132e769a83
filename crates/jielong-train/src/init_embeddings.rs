//! `train.init_embeddings`: start a neural model's token embedding table from word vectors
//! (`jielong vectors train`), so a user can see whether pre-trained vectors help.
//!
//! It needs a tokenizer whose tokens are whole words (the `word` kind) or characters (the
//! `char` kind, with vectors trained `--units chars`): each token whose text is in the vectors
//! file (exactly, else lowercased, for vectors trained with `--lowercase`) gets its vector; the
//! others keep their random initialisation. Word vectors are far larger than a transformer's
//! initial embeddings (norms of several units against about 0.02·√n_embd), and with a tied
//! output head large rows would make the first logits explode, so every copied row is
//! multiplied by one factor that gives the copied rows the standard deviation the random rows
//! had: directions and relative lengths are kept. It runs once, on a fresh run; a resumed run
//! reads the table from its checkpoint.

use candle_core::Tensor;
use jielong_core::{Error, Result};
use jielong_models::ModelConfig;
use jielong_nn::ParamStore;
use jielong_tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

/// What an initialisation did.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingInit {
    /// The vectors file read.
    pub source: PathBuf,
    /// Tokens that got a vector (of which `lowercased` through their lowercase form).
    pub covered: usize,
    pub lowercased: usize,
    /// Rows in the table (the model's vocab_size).
    pub rows: usize,
    /// The factor every copied vector was multiplied by.
    pub scale: f32,
}

/// Copy the vectors in `vectors` (a `jielong vectors train` folder or a vectors file) into the
/// token embedding table of `model`, whose parameters live in `params`.
pub fn init_embeddings(params: &ParamStore, model: &ModelConfig, tokenizer: &Tokenizer, vectors: &Path) -> Result<EmbeddingInit> {
    let (name, width) = model.token_embedding().ok_or_else(|| {
        Error::input(format!("train.init_embeddings: family {} has no token embedding table to initialise", model.family()))
    })?;
    if !tokenizer.has_word_level_model() {
        return Err(Error::input(
            "train.init_embeddings needs a word-level tokenizer (its tokens must be words to look up): \
             prepare the data with `jielong tokenizer train --kind word` (or --kind char, with vectors trained --units chars)",
        ));
    }
    let (emb, source) = jielong_vectors::formats::load(vectors)?;
    if emb.dim != width {
        return Err(Error::input(format!(
            "{}: the vectors have {} dimensions but model.n_embd is {width}: train them with `jielong vectors train --dim {width}` or set model.n_embd = {}",
            source.display(),
            emb.dim,
            emb.dim
        )));
    }
    let var = params
        .vars()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| Error::Other(format!("the model has no parameter {name}")))?;
    let rows = var.dims()[0];
    let mut table: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
    let index = emb.index();
    let (mut picked, mut lowercased) = (Vec::new(), 0usize);
    for id in 0..rows.min(tokenizer.vocab_size()) {
        let Some(piece) = tokenizer.id_to_piece(id as u32) else { continue };
        if let Some(&row) = index.get(piece.as_str()) {
            picked.push((id, row));
        } else if let Some(&row) = index.get(piece.to_lowercase().as_str()) {
            picked.push((id, row));
            lowercased += 1;
        }
    }
    if picked.is_empty() {
        return Err(Error::input(format!(
            "{}: none of the tokenizer's {} tokens is in these vectors; were they trained on the same kind of units (words or chars) and text?",
            source.display(),
            tokenizer.vocab_size()
        )));
    }
    let random_std = std_dev(table.iter().copied());
    let vec_std = std_dev(picked.iter().flat_map(|&(_, r)| emb.row(r).iter().copied()));
    let scale = if vec_std > 0.0 { (random_std / vec_std) as f32 } else { 1.0 };
    for &(id, r) in &picked {
        for (dst, &src) in table[id * width..(id + 1) * width].iter_mut().zip(emb.row(r)) {
            *dst = src * scale;
        }
    }
    var.set(&Tensor::from_vec(table, var.shape(), var.device())?)?;
    Ok(EmbeddingInit { source, covered: picked.len(), lowercased, rows, scale })
}

/// Population standard deviation (in f64, so large tables do not lose precision).
fn std_dev(xs: impl Iterator<Item = f32>) -> f64 {
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for x in xs {
        n += 1.0;
        sum += x as f64;
        sq += (x as f64) * (x as f64);
    }
    if n == 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    (sq / n - mean * mean).max(0.0).sqrt()
}
