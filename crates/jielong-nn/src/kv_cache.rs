//! The keys and values a Transformer carries from one decoding step to the next, for one
//! sequence. It is a value owned by the caller (the decoding engine), not a field of the model,
//! so one model serves many sequences at once.
//!
//! Each layer keeps two plain f32 buffers, token-major: row `p` holds position `p`'s keys of
//! every key/value head side by side ((n_kv_head · d) values, the layout of a packed
//! projection), so appending a token is one `memcpy` and head `j` of the cache is a strided
//! matrix view that `decode_attention` multiplies in place. Buffers grow by doubling (capped at
//! the model's context) and are written in place: decoding a token allocates nothing.
//! (Appending by concatenation allocated a fresh buffer per layer per token; the allocator
//! returned them to the OS and the page faults that followed took 70% of batched decoding
//! time.) `clone` copies the buffers: a beam that forks gets its own.

use candle_core::{DType, Result, Tensor};

#[derive(Debug, Clone, Default)]
pub(crate) struct LayerKv {
    /// `len` rows of `width` values (width = n_kv_head · d), then spare capacity.
    pub(crate) k: Vec<f32>,
    pub(crate) v: Vec<f32>,
    pub(crate) width: usize,
    pub(crate) len: usize,
}

impl LayerKv {
    /// Make room for `extra` more rows of `width` values, by doubling, never past `max_len`
    /// rows unless more are needed; spare rows past `len` are dropped (a rewound cache).
    pub(crate) fn reserve(&mut self, extra: usize, width: usize, max_len: usize) -> Result<()> {
        if self.len == 0 {
            self.width = width;
        } else if self.width != width {
            candle_core::bail!("kv cache: rows of {width} values appended to a layer of {}", self.width);
        }
        self.k.truncate(self.len * width);
        self.v.truncate(self.len * width);
        let need = self.len + extra;
        if need * width > self.k.capacity() {
            let rows = need.max(2 * self.k.capacity() / width.max(1)).max(64).next_power_of_two().min(max_len.max(need));
            self.k.reserve_exact(rows * width - self.k.len());
            self.v.reserve_exact(rows * width - self.v.len());
        }
        Ok(())
    }

    /// Append one position's keys and values (`width` values each), after `reserve`.
    pub(crate) fn push_row(&mut self, k: &[f32], v: &[f32]) {
        self.k.extend_from_slice(k);
        self.v.extend_from_slice(v);
        self.len += 1;
    }
}

#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerKv>,
    /// Buffers never grow past this many positions (the model's context).
    pub(crate) max_len: usize,
}

impl KvCache {
    /// An empty cache for `n_layer` layers of a model whose context is `max_len` tokens.
    pub fn new(n_layer: usize, max_len: usize) -> Self {
        Self { layers: vec![LayerKv::default(); n_layer], max_len }
    }

    /// Tokens held (as seen by the first layer).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The layer's buffers, created when first used.
    pub(crate) fn layer_mut(&mut self, layer: usize) -> &mut LayerKv {
        if layer >= self.layers.len() {
            self.layers.resize_with(layer + 1, LayerKv::default);
        }
        &mut self.layers[layer]
    }

    /// Add `k`, `v` (1, h, t, d) to `layer`; returns all keys and values so far as tensors
    /// (1, h, len + t, d) in the dtype of `k`. The explicit decoding path (attention maps, the
    /// reference kernels); `decode_attention::cached_attention` reads the buffers in place.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (_, h, t, d) = k.dims4()?;
        let w = h * d;
        // (1, h, t, d) → rows (t, h·d), f32.
        let rows = |x: &Tensor| -> Result<Vec<f32>> { x.to_dtype(DType::F32)?.squeeze(0)?.transpose(0, 1)?.flatten_all()?.to_vec1::<f32>() };
        let (kr, vr) = (rows(k)?, rows(v)?);
        let max_len = self.max_len;
        let l = self.layer_mut(layer);
        l.reserve(t, w, max_len)?;
        for (kr, vr) in kr.chunks_exact(w).zip(vr.chunks_exact(w)) {
            l.push_row(kr, vr);
        }
        let len = l.len;
        let back = |data: &[f32]| -> Result<Tensor> {
            Tensor::from_slice(&data[..len * h * d], (len, h, d), k.device())?.transpose(0, 1)?.unsqueeze(0)?.contiguous()?.to_dtype(k.dtype())
        };
        Ok((back(&l.k)?, back(&l.v)?))
    }

    /// Keep only the first `len` tokens (a chat turn that re-uses the common prefix).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        for l in self.layers.iter_mut() {
            l.len = l.len.min(len);
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        for l in self.layers.iter_mut() {
            l.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kv_cache_appends_truncates_and_forks_without_sharing_writes() {
        let dev = Device::Cpu;
        let mut a = KvCache::new(2, 100);
        let k = Tensor::arange(0f32, 12.0, &dev).unwrap().reshape((1, 2, 3, 2)).unwrap();
        for layer in 0..2 {
            a.append(layer, &k, &k).unwrap();
        }
        assert_eq!(a.len(), 3);
        let mut b = a.clone();
        let one = Tensor::ones((1, 2, 1, 2), candle_core::DType::F32, &dev).unwrap();
        let (k_all, _) = a.append(0, &one, &one).unwrap();
        assert_eq!(k_all.dims(), &[1, 2, 4, 2]);
        assert_eq!(a.len(), 4);
        assert_eq!(b.len(), 3, "a fork must not see the other's appends");
        // The keys come back as they went in, head by head.
        assert_eq!(k_all.narrow(2, 0, 3).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), k.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        // A fork is a copy: writing into one after truncation leaves the other intact.
        let before = b.clone();
        a.truncate(2).unwrap();
        assert_eq!(a.len(), 2);
        let (k_a, _) = a.append(0, &one, &one).unwrap();
        let (k_b, _) = b.append(0, &k.narrow(2, 2, 1).unwrap().contiguous().unwrap(), &one).unwrap();
        let row = |t: &Tensor, i: usize| t.narrow(2, i, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(row(&k_a, 2), vec![1.0; 4]);
        assert_eq!(row(&k_b, 2), row(&k, 2));
        assert_eq!(before.len(), 3);
        // Growth past the first buffer keeps the contents.
        let mut c = KvCache::new(1, 1000);
        for i in 0..200 {
            let x = Tensor::full(i as f32, (1, 2, 1, 2), &dev).unwrap();
            c.append(0, &x, &x).unwrap();
        }
        let (all, _) = c.append(0, &one, &one).unwrap();
        assert_eq!(all.dims(), &[1, 2, 201, 2]);
        assert_eq!(row(&all, 150)[0], 150.0);
        a.clear();
        assert!(a.is_empty());
    }
}
