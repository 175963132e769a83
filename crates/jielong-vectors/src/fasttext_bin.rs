//! fastText's own binary model file (`model.bin`, format version 12), the file `fasttext
//! skipgram` writes and `fasttext.load_model` / gensim's `load_facebook_model` read:
//!
//! 1. magic `793712314` and version `12` (int32);
//! 2. the arguments: dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
//!    lrUpdateRate (int32 each), t (float64);
//! 3. the dictionary: size, nwords, nlabels (int32), ntokens, pruneidx_size (int64), then per
//!    word its UTF-8 bytes ended by a zero byte, its count (int64) and its type (int8, 0 = word);
//! 4. the input matrix: a quantisation flag (one byte, 0), rows and columns (int64), then the
//!    rows as float32: the `nwords` word rows, then all `bucket` n-gram rows;
//! 5. the output matrix, the same way (`nwords` rows for negative sampling).
//!
//! Everything is little-endian, as fastText writes it on the machines it runs on. jielong keeps
//! only the n-gram rows some vocabulary word uses; the others were never read or written in
//! training, and are written as zeros (fastText would hold their random start).

use crate::fasttext::FastTextModel;
use jielong_core::{Error, Result};
use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

pub const MAGIC: i32 = 793_712_314;
pub const VERSION: i32 = 12;

/// fastText's `model_name`: cbow 1, skip-gram 2, supervised 3.
pub const MODEL_SKIPGRAM: i32 = 2;
/// fastText's `loss_name`: hierarchical softmax 1, negative sampling 2.
pub const LOSS_NEGATIVE: i32 = 2;

/// The arguments block of a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct BinArgs {
    pub dim: i32,
    pub ws: i32,
    pub epoch: i32,
    pub min_count: i32,
    pub neg: i32,
    pub word_ngrams: i32,
    pub loss: i32,
    pub model: i32,
    pub bucket: i32,
    pub minn: i32,
    pub maxn: i32,
    pub lr_update_rate: i32,
    pub t: f64,
}

/// Everything a model file holds, with the input matrix split into the word rows and the
/// n-gram rows that are not all zero.
pub struct FastTextBin {
    pub args: BinArgs,
    /// Words and their counts, in file order.
    pub words: Vec<(String, u64)>,
    pub ntokens: u64,
    /// `nwords × dim`: each word's own input row (not the mean of its bag).
    pub word_rows: Vec<f32>,
    /// Bucket → its input row, for the buckets whose row is not all zeros.
    pub ngram_rows: HashMap<u32, Vec<f32>>,
    /// `nwords × dim` output (negative-sampling) vectors.
    pub output: Vec<f32>,
}

fn put_i32(w: &mut impl Write, x: i32) -> std::io::Result<()> {
    w.write_all(&x.to_le_bytes())
}

fn put_i64(w: &mut impl Write, x: i64) -> std::io::Result<()> {
    w.write_all(&x.to_le_bytes())
}

fn put_rows(w: &mut impl Write, rows: &[f32]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(rows.len() * 4);
    for x in rows {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    w.write_all(&buf)
}

impl FastTextBin {
    /// Write the model file to `path` (inside an output folder that is committed as a whole).
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |e: std::io::Error| Error::io(path, e);
        let dim = self.args.dim as usize;
        let nwords = self.words.len();
        if self.word_rows.len() != nwords * dim || self.output.len() != nwords * dim {
            return Err(Error::input(format!("fastText model: {nwords} words but {} input and {} output floats for dim {dim}", self.word_rows.len(), self.output.len())));
        }
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).map_err(io)?);
        put_i32(&mut w, MAGIC).map_err(io)?;
        put_i32(&mut w, VERSION).map_err(io)?;
        let a = &self.args;
        for x in [a.dim, a.ws, a.epoch, a.min_count, a.neg, a.word_ngrams, a.loss, a.model, a.bucket, a.minn, a.maxn, a.lr_update_rate] {
            put_i32(&mut w, x).map_err(io)?;
        }
        w.write_all(&a.t.to_le_bytes()).map_err(io)?;
        put_i32(&mut w, nwords as i32).map_err(io)?;
        put_i32(&mut w, nwords as i32).map_err(io)?;
        put_i32(&mut w, 0).map_err(io)?;
        put_i64(&mut w, self.ntokens as i64).map_err(io)?;
        put_i64(&mut w, -1).map_err(io)?; // pruneidx_size: -1 = never pruned
        for (word, count) in &self.words {
            if word.as_bytes().contains(&0) {
                return Err(Error::input(format!("word {word:?} holds a zero byte, which a fastText model file cannot store")));
            }
            w.write_all(word.as_bytes()).map_err(io)?;
            w.write_all(&[0]).map_err(io)?;
            put_i64(&mut w, *count as i64).map_err(io)?;
            w.write_all(&[0]).map_err(io)?;
        }
        // Input matrix: word rows, then every bucket row.
        w.write_all(&[0]).map_err(io)?;
        put_i64(&mut w, (nwords + a.bucket as usize) as i64).map_err(io)?;
        put_i64(&mut w, dim as i64).map_err(io)?;
        put_rows(&mut w, &self.word_rows).map_err(io)?;
        let zeros = vec![0f32; dim];
        for b in 0..a.bucket as u32 {
            put_rows(&mut w, self.ngram_rows.get(&b).map_or(&zeros[..], |r| &r[..])).map_err(io)?;
        }
        // Output matrix.
        w.write_all(&[0]).map_err(io)?;
        put_i64(&mut w, nwords as i64).map_err(io)?;
        put_i64(&mut w, dim as i64).map_err(io)?;
        put_rows(&mut w, &self.output).map_err(io)?;
        w.into_inner().map_err(|e| Error::io(path, e.into_error()))?.sync_all().map_err(io)?;
        Ok(())
    }

    /// Read a model file. Supervised models, quantised matrices and files of another version
    /// are refused with a one-line error.
    pub fn read(path: &Path) -> Result<Self> {
        let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path).map_err(|e| Error::format(path, format!("cannot open: {e}")))?);
        let bad = |m: String| Error::format(path, m);
        let mut r = Reader { f: &mut f };
        let eof = |_| bad("the file ends early: not a complete fastText model".into());
        let magic = r.i32().map_err(eof)?;
        let version = r.i32().map_err(eof)?;
        if magic != MAGIC {
            return Err(bad(format!("not a fastText model file (magic {magic}, expected {MAGIC})")));
        }
        if version != VERSION {
            return Err(bad(format!("fastText format version {version}; this reader knows version {VERSION}")));
        }
        let mut v = [0i32; 12];
        for x in v.iter_mut() {
            *x = r.i32().map_err(eof)?;
        }
        let t = r.f64().map_err(eof)?;
        let args = BinArgs { dim: v[0], ws: v[1], epoch: v[2], min_count: v[3], neg: v[4], word_ngrams: v[5], loss: v[6], model: v[7], bucket: v[8], minn: v[9], maxn: v[10], lr_update_rate: v[11], t };
        if args.dim <= 0 || args.bucket < 0 {
            return Err(bad(format!("dim {} and bucket {} cannot be right", args.dim, args.bucket)));
        }
        let (size, nwords, nlabels) = (r.i32().map_err(eof)?, r.i32().map_err(eof)?, r.i32().map_err(eof)?);
        if nlabels > 0 || size != nwords {
            return Err(bad(format!("a supervised model ({nlabels} labels): only word-vector models can be read")));
        }
        let ntokens = r.i64().map_err(eof)? as u64;
        let prune = r.i64().map_err(eof)?;
        let mut words = Vec::with_capacity(nwords.max(0) as usize);
        for _ in 0..size {
            let mut bytes = Vec::new();
            loop {
                let b = r.u8().map_err(eof)?;
                if b == 0 {
                    break;
                }
                bytes.push(b);
            }
            let word = String::from_utf8(bytes).map_err(|_| bad(format!("word {} is not UTF-8", words.len())))?;
            let count = r.i64().map_err(eof)? as u64;
            let _kind = r.u8().map_err(eof)?;
            words.push((word, count));
        }
        for _ in 0..prune.max(0) {
            r.i32().map_err(eof)?;
            r.i32().map_err(eof)?;
        }
        let dim = args.dim as usize;
        let n = words.len();
        let (rows, cols) = r.matrix_shape().map_err(|e| bad(e.to_string()))?;
        if cols != dim || rows != n + args.bucket as usize {
            return Err(bad(format!("input matrix {rows}×{cols}, expected {}×{dim}", n + args.bucket as usize)));
        }
        let word_rows = r.floats(n * dim).map_err(eof)?;
        let mut ngram_rows = HashMap::new();
        for b in 0..args.bucket as u32 {
            let row = r.floats(dim).map_err(eof)?;
            if row.iter().any(|&x| x != 0.0) {
                ngram_rows.insert(b, row);
            }
        }
        let (rows, cols) = r.matrix_shape().map_err(|e| bad(e.to_string()))?;
        if cols != dim {
            return Err(bad(format!("output matrix has {cols} columns, expected {dim}")));
        }
        let output = r.floats(rows * dim).map_err(eof)?;
        Ok(FastTextBin { args, words, ntokens, word_rows, ngram_rows, output })
    }

    /// The vectors as jielong uses them: each word the mean of its bag, and the n-gram rows
    /// for words outside the vocabulary.
    pub fn to_model(&self) -> FastTextModel {
        let dim = self.args.dim as usize;
        let (minn, maxn, bucket) = (self.args.minn.max(0) as usize, self.args.maxn.max(0) as usize, self.args.bucket.max(0) as usize);
        let mut buckets: Vec<u32> = self.ngram_rows.keys().copied().collect();
        buckets.sort_unstable();
        let ngram_index: HashMap<u32, usize> = buckets.iter().enumerate().map(|(i, &b)| (b, i)).collect();
        let ngram_data: Vec<f32> = buckets.iter().flat_map(|b| self.ngram_rows[b].iter().copied()).collect();
        let zeros = vec![0f32; dim];
        let mut data = Vec::with_capacity(self.words.len() * dim);
        for (i, (word, _)) in self.words.iter().enumerate() {
            let mut acc = self.word_rows[i * dim..(i + 1) * dim].to_vec();
            let grams = crate::fasttext::ngram_buckets(word, minn, maxn, bucket);
            for b in &grams {
                let row = self.ngram_rows.get(b).map_or(&zeros[..], |r| &r[..]);
                acc.iter_mut().zip(row).for_each(|(a, x)| *a += x);
            }
            let n = (1 + grams.len()) as f32;
            data.extend(acc.into_iter().map(|x| x / n));
        }
        FastTextModel {
            embeddings: crate::Embeddings::new(self.words.iter().map(|(w, _)| w.clone()).collect(), dim, data),
            minn,
            maxn,
            bucket,
            ngram_index,
            ngram_rows: crate::Embeddings::new(buckets.iter().map(u32::to_string).collect(), dim, ngram_data),
        }
    }
}

/// Whether `path` starts with fastText's magic number.
pub fn is_fasttext_bin(path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && i32::from_le_bytes(head) == MAGIC
}

struct Reader<'a, R: Read> {
    f: &'a mut R,
}

impl<R: Read> Reader<'_, R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.f.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> std::io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn i32(&mut self) -> std::io::Result<i32> {
        Ok(i32::from_le_bytes(self.bytes()?))
    }
    fn i64(&mut self) -> std::io::Result<i64> {
        Ok(i64::from_le_bytes(self.bytes()?))
    }
    fn f64(&mut self) -> std::io::Result<f64> {
        Ok(f64::from_le_bytes(self.bytes()?))
    }
    fn matrix_shape(&mut self) -> std::result::Result<(usize, usize), String> {
        let quant = self.u8().map_err(|_| "the file ends before a matrix".to_string())?;
        if quant != 0 {
            return Err("a quantised model (.ftz): only full models can be read".into());
        }
        let rows = self.i64().map_err(|_| "the file ends in a matrix header".to_string())?;
        let cols = self.i64().map_err(|_| "the file ends in a matrix header".to_string())?;
        if rows < 0 || cols <= 0 {
            return Err(format!("a matrix of {rows}×{cols} cannot be right"));
        }
        Ok((rows as usize, cols as usize))
    }
    fn floats(&mut self, n: usize) -> std::io::Result<Vec<f32>> {
        let mut buf = vec![0u8; n * 4];
        self.f.read_exact(&mut buf)?;
        Ok(buf.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fasttext::ngram_buckets;

    fn tiny() -> FastTextBin {
        let dim = 3;
        let words = vec![("the".to_string(), 5u64), ("词向量".to_string(), 2)];
        let bucket = 97;
        let mut ngram_rows = HashMap::new();
        for (i, (w, _)) in words.iter().enumerate() {
            for b in ngram_buckets(w, 3, 6, bucket) {
                ngram_rows.insert(b, vec![0.5 + i as f32, -0.25, 0.125 * b as f32]);
            }
        }
        FastTextBin {
            args: BinArgs { dim, ws: 5, epoch: 5, min_count: 1, neg: 5, word_ngrams: 1, loss: LOSS_NEGATIVE, model: MODEL_SKIPGRAM, bucket: bucket as i32, minn: 3, maxn: 6, lr_update_rate: 100, t: 1e-3 },
            words,
            ntokens: 7,
            word_rows: vec![1.0, 2.0, 3.0, -1.0, 0.0, 4.5],
            ngram_rows,
            output: vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        }
    }

    #[test]
    fn fasttext_bin_round_trips_and_has_fasttexts_layout() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("model.bin");
        let m = tiny();
        m.write(&p).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        // Header 8 + args 12×4 + 8; dictionary 3×4 + 2×8 + ("the\0" + 9) + ("词向量\0" + 9);
        // input 1 + 16 + (2 + 97)×3×4; output 1 + 16 + 2×3×4.
        let dict = 12 + 16 + (4 + 9) + (10 + 9);
        assert_eq!(bytes.len(), 8 + 56 + dict + 17 + 99 * 12 + 17 + 24);
        assert_eq!(&bytes[0..4], &793_712_314i32.to_le_bytes());
        assert_eq!(&bytes[4..8], &12i32.to_le_bytes());
        assert_eq!(&bytes[64..68], &2i32.to_le_bytes()); // dictionary size
        assert!(is_fasttext_bin(&p));
        let back = FastTextBin::read(&p).unwrap();
        assert_eq!(back.args, m.args);
        assert_eq!(back.words, m.words);
        assert_eq!(back.ntokens, 7);
        assert_eq!(back.word_rows, m.word_rows);
        assert_eq!(back.ngram_rows, m.ngram_rows);
        assert_eq!(back.output, m.output);
        // A word's vector is the mean of its own row and its n-gram rows.
        let model = back.to_model();
        let grams = ngram_buckets("the", 3, 6, 97);
        let want0: f32 = (1.0 + grams.iter().map(|b| m.ngram_rows[b][0]).sum::<f32>()) / (1 + grams.len()) as f32;
        assert!((model.embeddings.row(0)[0] - want0).abs() < 1e-6);
    }

    #[test]
    fn fasttext_bin_bad_files_give_one_line_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.bin");
        std::fs::write(&p, b"not a model at all").unwrap();
        assert!(FastTextBin::read(&p).err().unwrap().to_string().contains("not a fastText model"));
        assert!(!is_fasttext_bin(&p));
        let good = d.path().join("m.bin");
        tiny().write(&good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        assert!(FastTextBin::read(&p).err().unwrap().to_string().contains("ends early"));
    }
}
