//! Positional information: learned tables (GPT-2), fixed sinusoids (the original Transformer),
//! and rotary embeddings (RoPE) applied to queries and keys, in Hugging Face's "rotate half"
//! convention (GPT-NeoX, Llama, Qwen2): for head dimension d and i < d/2, with
//! θ_i = theta^(−2i/d), position p rotates the pair (x_i, x_{i+d/2}) by the angle p·θ_i:
//!
//! ```text
//! y_i       = x_i·cos(pθ_i) − x_{i+d/2}·sin(pθ_i)
//! y_{i+d/2} = x_{i+d/2}·cos(pθ_i) + x_i·sin(pθ_i)      (= x·cos + rotate_half(x)·sin)
//! ```
//!
//! This is the one place RoPE lives: `Rope::apply` on split heads (the readable path, and
//! decoding at any offset), and `Rope::apply_packed` on a packed q|k|v projection for training,
//! one fused CPU kernel whose backward is the rotation by −pθ_i.

use crate::kernel::{self, contiguous_f32};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionEncoding {
    Learned,
    Sinusoidal,
    Rope,
}

/// The (max_len, dim) table of the original Transformer: sin on even, cos on odd columns,
/// wavelengths from 2π to 10000·2π.
pub fn sinusoidal_table(max_len: usize, dim: usize, dev: &Device) -> Result<Tensor> {
    let mut data = vec![0f32; max_len * dim];
    for pos in 0..max_len {
        for i in 0..dim / 2 {
            let freq = 1.0 / 10000f64.powf(2.0 * i as f64 / dim as f64);
            let angle = pos as f64 * freq;
            data[pos * dim + 2 * i] = angle.sin() as f32;
            data[pos * dim + 2 * i + 1] = angle.cos() as f32;
        }
    }
    Tensor::from_vec(data, (max_len, dim), dev)
}

/// Rotary position embedding tables for a head dimension `head_dim` (even).
#[derive(Debug, Clone)]
pub struct Rope {
    /// (max_len, head_dim): cos/sin of each position's angle, the half-table repeated twice.
    cos: Tensor,
    sin: Tensor,
    /// The half tables, (max_len, head_dim / 2) row-major, for the fused kernel.
    half: Arc<(Vec<f32>, Vec<f32>)>,
    head_dim: usize,
}

impl Rope {
    pub fn new(max_len: usize, head_dim: usize, theta: f64, dev: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let mut cos = vec![0f32; max_len * head_dim];
        let mut sin = vec![0f32; max_len * head_dim];
        let (mut cos_h, mut sin_h) = (vec![0f32; max_len * half], vec![0f32; max_len * half]);
        for pos in 0..max_len {
            for i in 0..half {
                // As transformers: inv_freq = 1 / theta^(2i/d) in f32, angle = pos · inv_freq.
                let inv_freq = (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32;
                let angle = (pos as f32 * inv_freq) as f64;
                let (c, s) = (angle.cos() as f32, angle.sin() as f32);
                cos_h[pos * half + i] = c;
                sin_h[pos * half + i] = s;
                for j in [i, i + half] {
                    cos[pos * head_dim + j] = c;
                    sin[pos * head_dim + j] = s;
                }
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_len, head_dim), dev)?,
            sin: Tensor::from_vec(sin, (max_len, head_dim), dev)?,
            half: Arc::new((cos_h, sin_h)),
            head_dim,
        })
    }

    /// Longest sequence the tables cover.
    pub fn max_len(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }

    /// Rotate the query and key heads of a packed projection `qkv` (b, t, (n_q + 2·n_kv)·d) —
    /// n_q query heads, n_kv key heads, then n_kv value heads, left as they are — for positions
    /// 0..t. One fused kernel on CPU f32 (backward: the inverse rotation), the split heads
    /// through `apply` elsewhere.
    pub fn apply_packed(&self, qkv: &Tensor, n_q: usize, n_kv: usize) -> Result<Tensor> {
        let (_, t, width) = qkv.dims3()?;
        let d = self.head_dim;
        if width != (n_q + 2 * n_kv) * d {
            candle_core::bail!("rope: width {width} is not (n_head {n_q} + 2 × n_kv_head {n_kv}) × head_dim {d}");
        }
        if t > self.max_len() {
            candle_core::bail!("rope: {t} positions but the tables cover {}", self.max_len());
        }
        if !crate::fused_for(qkv) {
            return self.apply_packed_reference(qkv, n_q, n_kv);
        }
        qkv.contiguous()?.apply_op1(RopePacked { tables: self.half.clone(), d, rotated: (n_q + n_kv) * d, width, inverse: false })
    }

    /// `apply_packed` composed from `apply` on the split heads (the readable path).
    pub fn apply_packed_reference(&self, qkv: &Tensor, n_q: usize, n_kv: usize) -> Result<Tensor> {
        let (b, t, _) = qkv.dims3()?;
        let d = self.head_dim;
        {
            let heads = |start: usize, n: usize| -> Result<Tensor> {
                qkv.narrow(D::Minus1, start * d, n * d)?.reshape((b, t, n, d))?.transpose(1, 2) // (b, n, t, d)
            };
            let back = |x: Tensor, n: usize| -> Result<Tensor> { x.transpose(1, 2)?.reshape((b, t, n * d)) };
            let q = back(self.apply(&heads(0, n_q)?.contiguous()?, 0)?, n_q)?;
            let k = back(self.apply(&heads(n_q, n_kv)?.contiguous()?, 0)?, n_kv)?;
            let v = qkv.narrow(D::Minus1, (n_q + n_kv) * d, n_kv * d)?;
            Tensor::cat(&[&q, &k, &v], D::Minus1)
        }
    }

    /// Rotate `xs` (b, h, t, d), position (r, i) at `positions[r·t + i]` (`positions`: a
    /// (b·t) u32 tensor; packed sequences, whose positions restart per example).
    pub fn apply_at(&self, xs: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let (b, _h, t, d) = xs.dims4()?;
        let cos = self.cos.index_select(positions, 0)?.reshape((b, 1, t, d))?;
        let sin = self.sin.index_select(positions, 0)?.reshape((b, 1, t, d))?;
        let x1 = xs.narrow(D::Minus1, 0, d / 2)?;
        let x2 = xs.narrow(D::Minus1, d / 2, d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        xs.broadcast_mul(&cos)?.broadcast_add(&rotated.broadcast_mul(&sin)?)
    }

    /// Rotate `xs` (b, h, t, d) for positions `offset..offset + t`.
    pub fn apply(&self, xs: &Tensor, offset: usize) -> Result<Tensor> {
        let (_b, _h, t, d) = xs.dims4()?;
        let cos = self.cos.narrow(0, offset, t)?;
        let sin = self.sin.narrow(0, offset, t)?;
        let x1 = xs.narrow(D::Minus1, 0, d / 2)?;
        let x2 = xs.narrow(D::Minus1, d / 2, d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        xs.broadcast_mul(&cos)?.broadcast_add(&rotated.broadcast_mul(&sin)?)
    }
}

/// Rotation of the first `rotated` columns of every row (heads of `d`), position = row index
/// within its sequence of `t` rows; the rest of the row is copied.
struct RopePacked {
    tables: Arc<(Vec<f32>, Vec<f32>)>,
    d: usize,
    rotated: usize,
    width: usize,
    /// Rotate by −angle (the backward pass).
    inverse: bool,
}

impl RopePacked {
    fn run(&self, xs: &[f32], t: usize) -> Vec<f32> {
        let mut ys = kernel::uninit_f32(xs.len());
        ys.par_chunks_mut(self.width).zip(xs.par_chunks(self.width)).enumerate().for_each(|(r, (y, x))| {
            self.rotate_row(x, y, r % t);
            y[self.rotated..].copy_from_slice(&x[self.rotated..]);
        });
        ys
    }

    /// The rotation in place (each pair of values is read before it is written).
    fn run_in_place(&self, xs: &mut [f32], t: usize) {
        self.run_in_place_at(xs, |r| r % t)
    }

    /// `run_in_place` with row `r` at position `pos(r)`.
    fn run_in_place_at(&self, xs: &mut [f32], pos: impl Fn(usize) -> usize + Sync) {
        let half = self.d / 2;
        let (cos, sin) = (&self.tables.0, &self.tables.1);
        let sign = if self.inverse { -1.0f32 } else { 1.0 };
        xs.par_chunks_mut(self.width).enumerate().for_each(|(r, row)| {
            let pos = pos(r);
            let (c, s) = (&cos[pos * half..(pos + 1) * half], &sin[pos * half..(pos + 1) * half]);
            for h in row[..self.rotated].chunks_mut(self.d) {
                let (x1, x2) = h.split_at_mut(half);
                for i in 0..half {
                    let (a, b, si) = (x1[i], x2[i], sign * s[i]);
                    x1[i] = a * c[i] - b * si;
                    x2[i] = b * c[i] + a * si;
                }
            }
        });
    }

    /// The query and key heads of one row at position `pos`, from `x` into `y`.
    fn rotate_row(&self, x: &[f32], y: &mut [f32], pos: usize) {
        for h0 in (0..self.rotated).step_by(self.d) {
            self.rotate_pair(&x[h0..h0 + self.d], &mut y[h0..h0 + self.d], pos);
        }
    }

    /// One head of `d` values: (x1, x2) → (x1·cos − x2·sin, x2·cos + x1·sin).
    fn rotate_pair(&self, x: &[f32], y: &mut [f32], pos: usize) {
        let half = self.d / 2;
        let (cos, sin) = (&self.tables.0, &self.tables.1);
        let sign = if self.inverse { -1.0f32 } else { 1.0 };
        let (c, s) = (&cos[pos * half..(pos + 1) * half], &sin[pos * half..(pos + 1) * half]);
        let (x1, x2) = x.split_at(half);
        let (y1, y2) = y.split_at_mut(half);
        for i in 0..half {
            let si = sign * s[i];
            y1[i] = x1[i] * c[i] - x2[i] * si;
            y2[i] = x2[i] * c[i] + x1[i] * si;
        }
    }
}

impl Rope {
    /// Rotate, in place, the query and key heads of packed rows `xs` ((b·t) rows of
    /// (n_q + 2·n_kv)·d values, positions 0..t in each sequence), or rotate back with
    /// `inverse` (the backward pass of the rotation): slice level, for fused layers.
    pub(crate) fn rotate_packed_in_place(&self, xs: &mut [f32], t: usize, n_q: usize, n_kv: usize, inverse: bool) {
        let d = self.head_dim;
        let op = RopePacked { tables: self.half.clone(), d, rotated: (n_q + n_kv) * d, width: (n_q + 2 * n_kv) * d, inverse };
        op.run_in_place(xs, t);
    }

    /// Rotate, in place, the query and key heads of packed rows `xs` (rows of
    /// (n_q + 2·n_kv)·d values), row `r` at position `positions[r]`: the cached decoding
    /// path, where each sequence's new tokens continue from its own cache length.
    pub(crate) fn rotate_packed_at(&self, xs: &mut [f32], positions: &[usize], n_q: usize, n_kv: usize) -> Result<()> {
        let d = self.head_dim;
        if let Some(&p) = positions.iter().find(|&&p| p >= self.max_len()) {
            candle_core::bail!("rope: position {p} but the tables cover {}", self.max_len());
        }
        let op = RopePacked { tables: self.half.clone(), d, rotated: (n_q + n_kv) * d, width: (n_q + 2 * n_kv) * d, inverse: false };
        op.run_in_place_at(xs, |r| positions[r]);
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
}

impl CustomOp1 for RopePacked {
    fn name(&self) -> &'static str {
        "jielong-rope-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let xs = contiguous_f32(s, l, "rope input")?;
        let (_, t, _) = l.shape().dims3()?;
        Ok((CpuStorage::F32(self.run(xs, t)), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let (_, t, _) = arg.dims3()?;
        let inv = RopePacked { tables: self.tables.clone(), d: self.d, rotated: self.rotated, width: self.width, inverse: !self.inverse };
        let dy = dy.contiguous()?;
        let dx = kernel::with_f32([(&dy, "rope gradient")], |[g]| Ok(inv.run(g, t)))?;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?.to_dtype(DType::F32)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn rope_follows_hf_rotate_half_formula() {
        // transformers' LlamaRotaryEmbedding + apply_rotary_pos_emb, written out by hand:
        // inv_freq = 1/theta^(arange(0, d, 2)/d); emb = cat(freqs, freqs);
        // q_embed = q·cos(emb) + rotate_half(q)·sin(emb), rotate_half(x) = cat(−x2, x1).
        let dev = Device::Cpu;
        let (t, d, theta) = (7, 8, 500_000.0f64);
        let xs = Tensor::randn(0f32, 1.0, (1, 1, t, d), &dev).unwrap();
        let x = xs.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let ours = Rope::new(16, d, theta, &dev).unwrap().apply(&xs, 0).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for p in 0..t {
            let row = &x[p * d..(p + 1) * d];
            let rot: Vec<f32> = (0..d).map(|j| if j < d / 2 { -row[j + d / 2] } else { row[j - d / 2] }).collect();
            for j in 0..d {
                let inv_freq = 1.0 / theta.powf((2 * (j % (d / 2))) as f64 / d as f64);
                let a = p as f64 * inv_freq;
                let want = row[j] as f64 * a.cos() + rot[j] as f64 * a.sin();
                assert!((ours[p * d + j] as f64 - want).abs() < 1e-5, "p{p} j{j}: {} vs {want}", ours[p * d + j]);
            }
        }
    }

    #[test]
    fn rope_packed_matches_split_heads_values_and_gradients() {
        let dev = Device::Cpu;
        let (b, t, h, kv, d) = (2, 9, 4, 2, 8);
        let rope = Rope::new(16, d, 10_000.0, &dev).unwrap();
        let qkv = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, t, (h + 2 * kv) * d), &dev).unwrap()).unwrap();
        let fused = rope.apply_packed(qkv.as_tensor(), h, kv).unwrap();
        let composed = rope.apply_packed_reference(qkv.as_tensor(), h, kv).unwrap();
        let diff = crate::testing::max_diff(&fused, &composed);
        assert!(diff < 1e-6, "{diff}");
        let r = Tensor::randn(0f32, 1.0, fused.shape(), &dev).unwrap();
        let ga = (fused * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (composed * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let d = crate::testing::max_diff(ga.get(qkv.as_tensor()).unwrap(), gb.get(qkv.as_tensor()).unwrap());
        assert!(d < 1e-5, "gradients differ by {d}");
    }

    #[test]
    fn rope_matches_candle_kernel_and_keeps_norms() {
        let dev = Device::Cpu;
        let xs = Tensor::randn(0f32, 1.0, (1, 2, 5, 8), &dev).unwrap();
        let rope = Rope::new(16, 8, 10000.0, &dev).unwrap();
        let ours = rope.apply(&xs, 0).unwrap();
        let cos = rope.cos.narrow(0, 0, 5).unwrap().narrow(1, 0, 4).unwrap().contiguous().unwrap();
        let sin = rope.sin.narrow(0, 0, 5).unwrap().narrow(1, 0, 4).unwrap().contiguous().unwrap();
        let theirs = candle_nn::rotary_emb::rope(&xs, &cos, &sin).unwrap();
        let diff: f32 = (ours.clone() - theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(diff < 1e-5, "{diff}");
        let n0: f32 = xs.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        let n1: f32 = ours.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!((n0 - n1).abs() < 1e-3);
    }

    #[test]
    fn sinusoidal_table_first_row() {
        let t = sinusoidal_table(4, 6, &Device::Cpu).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(t[0], vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert!((t[1][0] - 1f32.sin()).abs() < 1e-6);
    }
}
