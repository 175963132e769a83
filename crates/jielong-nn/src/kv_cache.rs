//! The keys and values a Transformer carries from one decoding step to the next, for one
//! sequence. It is a value owned by the caller (the decoding engine), not a field of the model,
//! so one model serves many sequences at once.
//!
//! Tensors are never written in place: appending makes a new tensor. Cloning a cache is
//! therefore cheap and safe (the tensors are shared), which is what beam search needs when a
//! beam forks. The copy an append makes is O(context), the same order as the attention it feeds.

use candle_core::{Result, Tensor};

#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Per layer: keys and values (1, h, len, d), or None before the first token.
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    pub fn new(n_layer: usize) -> Self {
        Self { layers: vec![None; n_layer] }
    }

    /// Tokens held (as seen by the first layer).
    pub fn len(&self) -> usize {
        match self.layers.first() {
            Some(Some((k, _))) => k.dims()[2],
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add `k`, `v` (1, h, t, d) to `layer`; returns all keys and values so far (1, h, len + t, d).
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        if layer >= self.layers.len() {
            self.layers.resize(layer + 1, None);
        }
        let kv = match &self.layers[layer] {
            None => (k.clone(), v.clone()),
            Some((k0, v0)) => (Tensor::cat(&[k0, k], 2)?, Tensor::cat(&[v0, v], 2)?),
        };
        self.layers[layer] = Some(kv.clone());
        Ok(kv)
    }

    /// Keep only the first `len` tokens (a chat turn that re-uses the common prefix).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        for slot in self.layers.iter_mut() {
            if let Some((k, v)) = slot {
                let have = k.dims()[2];
                if len == 0 {
                    *slot = None;
                } else if len < have {
                    *slot = Some((k.narrow(2, 0, len)?.contiguous()?, v.narrow(2, 0, len)?.contiguous()?));
                }
            }
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|s| *s = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn kv_cache_appends_truncates_and_forks_without_sharing_writes() {
        let dev = Device::Cpu;
        let mut a = KvCache::new(2);
        let k = Tensor::arange(0f32, 12.0, &dev).unwrap().reshape((1, 2, 3, 2)).unwrap();
        for layer in 0..2 {
            a.append(layer, &k, &k).unwrap();
        }
        assert_eq!(a.len(), 3);
        let b = a.clone();
        let one = Tensor::ones((1, 2, 1, 2), candle_core::DType::F32, &dev).unwrap();
        let (k_all, _) = a.append(0, &one, &one).unwrap();
        assert_eq!(k_all.dims(), &[1, 2, 4, 2]);
        assert_eq!(a.len(), 4);
        assert_eq!(b.len(), 3, "a fork must not see the other's appends");
        a.truncate(2).unwrap();
        assert_eq!(a.len(), 2);
        a.clear();
        assert!(a.is_empty());
    }
}
