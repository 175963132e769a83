//! Sentence embeddings from any model with the encoder capability: tokenize (with the
//! tokenizer's special tokens, `[CLS] … [SEP]` for BERT), sort the texts by length, run them in
//! right-padded batches with an attention mask, pool each text's hidden states (mean over its
//! real tokens, or the first token) and optionally scale to unit length.
//!
//! The tokenizer's own padding and truncation settings are switched off: a `tokenizer.json`
//! saved with `padding: Fixed(128)` (as all-MiniLM-L6-v2's is) would otherwise pad every text
//! to 128 tokens before the model sees it. Padding is the batcher's job, and the attention
//! mask keeps it out of both the attention and the mean, so a text's vector does not depend on
//! what it was batched with. Truncation is explicit: [`Truncate`].

use candle_core::{DType, Device, Tensor};
use jielong_core::{Error, Result};
use jielong_models::Encoder;
use jielong_tokenizer::Tokenizer;

/// How a text's hidden states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean over the text's tokens (padding excluded): sentence-transformers' default.
    Mean,
    /// The first token's hidden state (`[CLS]` for BERT).
    Cls,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            _ => Err(Error::input(format!("--pooling {s}: use mean or cls"))),
        }
    }
}

/// What to do with a text longer than the model's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truncate {
    /// Keep the first `max_len` tokens (special tokens kept) and count the text.
    Cut,
    /// Refuse it.
    Error,
}

#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    pub pooling: Pooling,
    pub normalize: bool,
    /// Longest tokenized text (special tokens included); at most the model's `max_seq_len`.
    pub max_len: usize,
    pub batch_size: usize,
    pub truncate: Truncate,
}

/// The vectors of a list of texts, in the order given.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// n × dim, row-major.
    pub data: Vec<f32>,
    pub dim: usize,
    /// Texts cut to `max_len` tokens.
    pub truncated: usize,
    /// Tokens the model read for each text (special tokens included, after any cut).
    pub lengths: Vec<usize>,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
    /// The n × n matrix of cosine similarities.
    pub fn cosine_matrix(&self) -> Vec<Vec<f32>> {
        let norms: Vec<f32> = (0..self.len()).map(|i| self.row(i).iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12)).collect();
        (0..self.len())
            .map(|i| (0..self.len()).map(|j| self.row(i).iter().zip(self.row(j)).map(|(a, b)| a * b).sum::<f32>() / (norms[i] * norms[j])).collect())
            .collect()
    }
}

pub struct Embedder<'a> {
    enc: &'a dyn Encoder,
    /// The tokenizer with padding and truncation switched off.
    whole: tokenizers::Tokenizer,
    /// The same, truncating to `max_len` (special tokens kept).
    cut: tokenizers::Tokenizer,
    pad_id: u32,
    opts: EmbedOptions,
    dev: Device,
}

impl<'a> Embedder<'a> {
    pub fn new(enc: &'a dyn Encoder, tk: &Tokenizer, opts: EmbedOptions, dev: &Device) -> Result<Self> {
        if opts.max_len == 0 || opts.max_len > enc.max_seq_len() {
            return Err(Error::input(format!("--max-len {}: the model reads 1 to {} tokens", opts.max_len, enc.max_seq_len())));
        }
        if opts.batch_size == 0 {
            return Err(Error::input("--batch-size must be at least 1"));
        }
        let mut whole = tk.inner().clone();
        whole.with_padding(None);
        whole.with_truncation(None).map_err(|e| Error::Other(format!("tokenizer: {e}")))?;
        let mut cut = whole.clone();
        let params = tokenizers::TruncationParams { max_length: opts.max_len, ..Default::default() };
        cut.with_truncation(Some(params)).map_err(|e| Error::input(format!("cannot truncate to {} tokens: {e}", opts.max_len)))?;
        let pad_id = ["[PAD]", "<pad>", "<|endoftext|>"].iter().find_map(|p| whole.token_to_id(p)).unwrap_or(0);
        // The weights in the layout the CPU products read fastest (same values).
        enc.prepare_inference()?;
        Ok(Self { enc, whole, cut, pad_id, opts, dev: dev.clone() })
    }

    /// The ids the model reads for `text` (special tokens added), and whether it was cut.
    pub fn tokenize(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let enc = self.whole.encode_fast(text, true).map_err(|e| Error::input(format!("tokenizing: {e}")))?;
        if enc.len() <= self.opts.max_len {
            return Ok((enc.get_ids().to_vec(), false));
        }
        if self.opts.truncate == Truncate::Error {
            let head: String = text.chars().take(40).collect();
            return Err(Error::input(format!(
                "a text of {} tokens is longer than the limit of {} (\"{head}…\"): shorten it, or drop --truncate error to cut it",
                enc.len(),
                self.opts.max_len
            )));
        }
        let enc = self.cut.encode_fast(text, true).map_err(|e| Error::input(format!("tokenizing: {e}")))?;
        Ok((enc.get_ids().to_vec(), true))
    }

    /// Embed `texts`; `progress(done)` is called after each batch with the texts done so far.
    pub fn embed(&self, texts: &[&str], mut progress: impl FnMut(usize)) -> Result<Embeddings> {
        if texts.is_empty() {
            return Err(Error::input("nothing to embed: the input has no texts"));
        }
        let mut seqs = Vec::with_capacity(texts.len());
        let mut truncated = 0;
        for t in texts {
            let (ids, cut) = self.tokenize(t)?;
            truncated += cut as usize;
            seqs.push(ids);
        }
        // Longest first: each batch pads to lengths close to its own.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let dim = self.enc.hidden_size();
        let mut data = vec![0f32; texts.len() * dim];
        let mut done = 0;
        for batch in order.chunks(self.opts.batch_size) {
            let rows: Vec<&[u32]> = batch.iter().map(|&i| seqs[i].as_slice()).collect();
            let vecs = self.embed_batch(&rows)?;
            for (k, &i) in batch.iter().enumerate() {
                data[i * dim..(i + 1) * dim].copy_from_slice(&vecs[k * dim..(k + 1) * dim]);
            }
            done += batch.len();
            progress(done);
        }
        let lengths = seqs.iter().map(Vec::len).collect();
        Ok(Embeddings { data, dim, truncated, lengths })
    }

    /// One right-padded batch → (rows × dim) pooled vectors.
    fn embed_batch(&self, rows: &[&[u32]]) -> Result<Vec<f32>> {
        let (b, t) = (rows.len(), rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1));
        let mut ids = vec![self.pad_id; b * t];
        let mut mask = vec![0u32; b * t];
        for (i, r) in rows.iter().enumerate() {
            ids[i * t..i * t + r.len()].copy_from_slice(r);
            mask[i * t..i * t + r.len()].iter_mut().for_each(|m| *m = 1);
        }
        let ids_t = Tensor::from_vec(ids, (b, t), &self.dev)?;
        let mask_t = Tensor::from_vec(mask, (b, t), &self.dev)?;
        // [CLS] pooling reads one position: the encoder's last layer computes that row alone.
        let hidden = match self.opts.pooling {
            Pooling::Cls => self.enc.hidden_states_at(&ids_t, None, &mask_t, &vec![0; b], None)?,
            Pooling::Mean => self.enc.hidden_states(&ids_t, None, &mask_t)?,
        }
        .to_dtype(DType::F32)?;
        let dim = hidden.dim(candle_core::D::Minus1)?;
        let h: Vec<f32> = hidden.flatten_all()?.to_vec1()?;
        let mut out = vec![0f32; b * dim];
        for (i, r) in rows.iter().enumerate() {
            let dst = &mut out[i * dim..(i + 1) * dim];
            match self.opts.pooling {
                Pooling::Cls => dst.copy_from_slice(&h[i * dim..(i + 1) * dim]),
                Pooling::Mean => {
                    for p in 0..r.len() {
                        let src = &h[(i * t + p) * dim..(i * t + p + 1) * dim];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                    }
                    let inv = 1.0 / r.len().max(1) as f32;
                    dst.iter_mut().for_each(|d| *d *= inv);
                }
            }
            if self.opts.normalize {
                // As torch.nn.functional.normalize: x / max(‖x‖, 1e-12).
                let norm = dst.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                dst.iter_mut().for_each(|d| *d /= norm);
            }
        }
        Ok(out)
    }
}
