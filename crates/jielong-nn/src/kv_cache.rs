//! The keys and values a Transformer carries from one decoding step to the next, for one
//! sequence. It is a value owned by the caller (the decoding engine), not a field of the model,
//! so one model serves many sequences at once.
//!
//! Each layer keeps one buffer (1, h, capacity, d) that grows by doubling, and new keys are
//! written into it in place: decoding a token allocates nothing. (Appending by concatenation
//! allocated a fresh buffer per layer per token; the allocator returned them to the OS and the
//! page faults that followed took 70% of batched decoding time.) Because buffers are written in
//! place, `clone` copies them: a beam that forks gets its own.

use candle_core::{Result, Tensor};

#[derive(Debug)]
struct LayerKv {
    /// (1, h, capacity, d), contiguous; the first `len` positions are valid.
    k: Tensor,
    v: Tensor,
    len: usize,
}

#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    /// Buffers never grow past this many positions (the model's context).
    max_len: usize,
}

impl Clone for KvCache {
    fn clone(&self) -> Self {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref().map(|l| LayerKv {
                    k: l.k.copy().expect("copying a CPU tensor"),
                    v: l.v.copy().expect("copying a CPU tensor"),
                    len: l.len,
                })
            })
            .collect();
        Self { layers, max_len: self.max_len }
    }
}

impl KvCache {
    /// An empty cache for `n_layer` layers of a model whose context is `max_len` tokens.
    pub fn new(n_layer: usize, max_len: usize) -> Self {
        Self { layers: (0..n_layer).map(|_| None).collect(), max_len }
    }

    /// Tokens held (as seen by the first layer).
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some(l)) => l.len,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add `k`, `v` (1, h, t, d) to `layer`; returns views of all keys and values so far,
    /// (1, h, len + t, d).
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if layer >= self.layers.len() {
            self.layers.resize_with(layer + 1, || None);
        }
        let (_, h, t, d) = k.dims4()?;
        let len = self.layers[layer].as_ref().map_or(0, |l| l.len);
        let need = len + t;
        let cap = self.layers[layer].as_ref().map_or(0, |l| l.k.dims()[2]);
        if need > cap {
            let new_cap = need.max(2 * cap).max(64).next_power_of_two().min(self.max_len.max(need));
            let grow = |old: Option<&Tensor>| -> Result<Tensor> {
                let buf = Tensor::zeros((1, h, new_cap, d), k.dtype(), k.device())?;
                if let Some(old) = old.filter(|_| len > 0) {
                    buf.slice_set(&old.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                }
                Ok(buf)
            };
            let slot = self.layers[layer].as_ref();
            let (nk, nv) = (grow(slot.map(|l| &l.k))?, grow(slot.map(|l| &l.v))?);
            self.layers[layer] = Some(LayerKv { k: nk, v: nv, len });
        }
        let l = self.layers[layer].as_mut().expect("allocated above");
        l.k.slice_set(&k.contiguous()?, 2, len)?;
        l.v.slice_set(&v.contiguous()?, 2, len)?;
        l.len = need;
        Ok((l.k.narrow(2, 0, need)?, l.v.narrow(2, 0, need)?))
    }

    /// Keep only the first `len` tokens (a chat turn that re-uses the common prefix).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        for l in self.layers.iter_mut().flatten() {
            l.len = l.len.min(len);
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        for l in self.layers.iter_mut().flatten() {
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
