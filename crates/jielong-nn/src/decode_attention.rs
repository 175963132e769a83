//! Causal attention for cached decoding, one fused CPU kernel over every live sequence of a
//! batch, each with its own cache length: the new tokens of all sequences arrive packed as one
//! projection (n, (h + 2·kv)·d) (n = the sum of the chunk lengths: one token per sequence when
//! decoding, whole prompts at prefill); their keys and values are copied into each sequence's
//! `KvCache` in place (one `memcpy` per token and layer, no concatenation, no new tensors), and
//! each (sequence, query head) pair is one task on the rayon pool that reads that sequence's
//! cached keys and values where they lie, as strided matrices.
//!
//! A single query (decoding) is a dot product with each cached key, a softmax and a weighted
//! sum of the values, written as loops the compiler vectorises. Several queries (a prompt, or
//! a chunk after a chat turn) go in blocks of `BLOCK` rows through two matrix products, as in
//! `flash`: block [q0, q1) scores keys 0..off + q1 only, the masked rest is never computed.
//!
//! Before this kernel the models attended sequence by sequence with a dozen small candle ops
//! each (split, transpose, copy, append, matmul, mask, softmax, matmul, transpose, cat): at
//! batch 16 that was 16 × 6 layers × ~12 ops per step, each allocating. The reference is the
//! explicit path (`KvCache::append` + `causal_self_attention`), see the parity test.

use crate::flash::Out;
use crate::kernel::{self, contiguous_f32};
use crate::matmul::{sgemm, Mat};
use crate::{KvCache, Rope};
use candle_core::{DType, Result, Storage, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// Query rows per block when a sequence brings several new tokens.
const BLOCK: usize = 64;


/// Attention of layer `layer` for the packed projection `qkv` (n, (n_head + 2·n_kv_head)·d):
/// rows `lens[0]` belong to sequence 0, the next `lens[1]` to sequence 1, and so on; sequence
/// `s` continues from the `caches[s]` it holds at this layer. The queries and keys are rotated
/// by `rope` at their positions first, when given. The new keys and values are appended to
/// the caches. Returns (n, n_head·d). CPU f32 only (`crate::fused_for`).
pub fn cached_attention(qkv: &Tensor, layer: usize, lens: &[usize], caches: &mut [&mut KvCache], n_head: usize, n_kv_head: usize, rope: Option<&Rope>) -> Result<Tensor> {
    let (n, width) = qkv.dims2()?;
    if qkv.dtype() != DType::F32 || !qkv.device().is_cpu() {
        candle_core::bail!("cached attention runs on CPU f32 only");
    }
    if n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) || !width.is_multiple_of(n_head + 2 * n_kv_head) {
        candle_core::bail!("cached attention: width {width} is not (n_head {n_head} + 2 × n_kv_head {n_kv_head}) × head size");
    }
    if lens.len() != caches.len() || lens.iter().sum::<usize>() != n || lens.contains(&0) {
        candle_core::bail!("cached attention: chunk lengths {lens:?} do not split {n} rows over {} caches", caches.len());
    }
    let (h, kv, d) = (n_head, n_kv_head, width / (n_head + 2 * n_kv_head));
    let offsets: Vec<usize> = caches.iter_mut().map(|c| c.layer_mut(layer).len).collect();
    let qkv = qkv.contiguous()?;
    let (storage, layout) = qkv.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else { candle_core::bail!("cached attention runs on the CPU only") };
    let data = contiguous_f32(cpu, layout, "cached attention qkv")?;
    // Rotated copy when the model uses RoPE; the projection as it is otherwise.
    let rotated;
    let data: &[f32] = match rope {
        Some(rope) => {
            let positions: Vec<usize> = lens.iter().zip(&offsets).flat_map(|(&t, &off)| off..off + t).collect();
            let mut owned = data.to_vec();
            rope.rotate_packed_at(&mut owned, &positions, h, kv)?;
            rotated = owned;
            &rotated
        }
        None => data,
    };
    // The new keys and values into each sequence's cache.
    let kvw = kv * d;
    let mut start = 0;
    for (cache, &t) in caches.iter_mut().zip(lens) {
        let max_len = cache.max_len;
        let l = cache.layer_mut(layer);
        l.reserve(t, kvw, max_len)?;
        for r in start..start + t {
            let row = &data[r * width..(r + 1) * width];
            l.push_row(&row[h * d..h * d + kvw], &row[h * d + kvw..]);
        }
        start += t;
    }
    let seqs: Vec<Seq> = {
        let mut start = 0;
        caches
            .iter()
            .zip(lens.iter().zip(&offsets))
            .map(|(c, (&t, &off))| {
                let l = &c.layers[layer];
                let s = Seq { start, t, off, k: &l.k[..l.len * kvw], v: &l.v[..l.len * kvw] };
                start += t;
                s
            })
            .collect()
    };
    let dm = Dims { h, kv, d, width, kvw, c: h * d, scale: 1.0 / (d as f32).sqrt() };
    // Every (sequence, head) task writes its rows × d block, and the tasks tile y.
    let mut y = kernel::uninit_f32(n * dm.c);
    let out = Out(y.as_mut_ptr());
    let longest = seqs.iter().map(|s| s.off + s.t).max().unwrap_or(0);
    let rows = seqs.iter().map(|s| s.t).max().unwrap_or(1).min(BLOCK);
    // Decoding with at least two sequences per thread: one task per sequence, sweeping each
    // cached row once for all heads (the cache is read front to back, which is what bounds
    // batched decoding: at batch 16 the medium model's caches are ~70 MB per step). Otherwise
    // one task per (sequence, head), so that one long prompt still fills every thread.
    let per_sequence = seqs.iter().all(|s| s.t == 1) && seqs.len() >= 2 * rayon::current_num_threads();
    let heads_per_task = if per_sequence { h } else { 1 };
    (0..seqs.len() * h / heads_per_task).into_par_iter().for_each(|task| {
        let s = &seqs[task * heads_per_task / h];
        // Scores of one block: a buffer kept per thread, grown when needed, never zeroed (each
        // task writes what it reads). A fresh zeroed buffer per rayon split cost more than
        // the attention itself at batch 16.
        SCRATCH.with_borrow_mut(|p| {
            if p.len() < rows.max(heads_per_task) * longest {
                p.resize(rows.max(heads_per_task) * longest, 0.0);
            }
            if per_sequence {
                one_query_all_heads(data, s, &dm, p, out);
            } else if s.t == 1 {
                one_query(data, s, task % h, &dm, p, out);
            } else {
                query_blocks(data, s, task % h, &dm, p, out);
            }
        })
    });
    drop(storage);
    Tensor::from_vec(y, (n, dm.c), qkv.device())
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One sequence's part of the step.
struct Seq<'a> {
    /// First row of its new tokens in the packed projection.
    start: usize,
    /// New tokens.
    t: usize,
    /// Positions cached before this step.
    off: usize,
    /// Its cache at this layer, `off + t` rows of `kvw` values (the new ones included).
    k: &'a [f32],
    v: &'a [f32],
}

struct Dims {
    h: usize,
    kv: usize,
    d: usize,
    /// Width of a packed projection row, (h + 2·kv)·d.
    width: usize,
    /// Width of a cache row, kv·d.
    kvw: usize,
    /// Width of an output row, h·d.
    c: usize,
    scale: f32,
}

impl Dims {
    /// Column of query head `hi`'s key/value head within a cache row.
    fn kv_col(&self, hi: usize) -> usize {
        hi / (self.h / self.kv) * self.d
    }
}

/// The decoding case: query head `hi` of a sequence's single new token against all its keys.
fn one_query(data: &[f32], s: &Seq, hi: usize, dm: &Dims, p: &mut [f32], out: Out) {
    let n = s.off + 1;
    let d = dm.d;
    let q = &data[s.start * dm.width + hi * d..][..d];
    let col = dm.kv_col(hi);
    let scores = &mut p[..n];
    kernel::vectorized(
        #[inline(always)]
        || {
        for (j, sc) in scores.iter_mut().enumerate() {
            let k = &s.k[j * dm.kvw + col..][..d];
            *sc = dot(q, k);
        }
        let max = kernel::max(scores) * dm.scale;
        let inv = 1.0 / kernel::exp_sum_in_place(scores, dm.scale, max);
        // SAFETY: this task alone writes row `start`, columns hi·d .. (hi + 1)·d of y.
        let y = unsafe { std::slice::from_raw_parts_mut(out.at(s.start * dm.c + hi * d), d) };
        y.fill(0.0);
        for (j, &pj) in scores.iter().enumerate() {
            let v = &s.v[j * dm.kvw + col..][..d];
            let w = pj * inv;
            for (a, &b) in y.iter_mut().zip(v) {
                *a += w * b;
            }
        }
    })
}

/// `one_query` for every head of a sequence at once, each cached row read once, in order.
fn one_query_all_heads(data: &[f32], s: &Seq, dm: &Dims, p: &mut [f32], out: Out) {
    let n = s.off + 1;
    let (d, h) = (dm.d, dm.h);
    let q = &data[s.start * dm.width..][..h * d];
    let scores = &mut p[..h * n]; // head-major: scores[hi·n + j]
    // SAFETY: this task alone writes row `start` of y.
    let y = unsafe { std::slice::from_raw_parts_mut(out.at(s.start * dm.c), h * d) };
    kernel::vectorized(
        #[inline(always)]
        || {
            for j in 0..n {
                let row = &s.k[j * dm.kvw..][..dm.kvw];
                for hi in 0..h {
                    let col = dm.kv_col(hi);
                    scores[hi * n + j] = dot(&q[hi * d..][..d], &row[col..][..d]);
                }
            }
            for hi in 0..h {
                let sc = &mut scores[hi * n..][..n];
                let max = kernel::max(sc) * dm.scale;
                let w = 1.0 / kernel::exp_sum_in_place(sc, dm.scale, max);
                sc.iter_mut().for_each(|x| *x *= w);
            }
            y.fill(0.0);
            for j in 0..n {
                let row = &s.v[j * dm.kvw..][..dm.kvw];
                for hi in 0..h {
                    let col = dm.kv_col(hi);
                    let w = scores[hi * n + j];
                    for (a, &b) in y[hi * d..][..d].iter_mut().zip(&row[col..][..d]) {
                        *a += w * b;
                    }
                }
            }
        },
    )
}

/// a · b with sixteen running sums over exact chunks, so that it compiles to vector FMAs
/// (no bounds checks inside the loop); the tail (d not a multiple of 16) is added last.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    tail + acc.iter().sum::<f32>()
}

/// Several new tokens: blocks of `BLOCK` queries through two matrix products each.
fn query_blocks(data: &[f32], s: &Seq, hi: usize, dm: &Dims, p: &mut [f32], out: Out) {
    let d = dm.d;
    let col = dm.kv_col(hi);
    let k = Mat { ptr: s.k[col..].as_ptr(), rs: 1, cs: dm.kvw as isize }; // Kᵀ (d, keys)
    let v = Mat { ptr: s.v[col..].as_ptr(), rs: dm.kvw as isize, cs: 1 }; // V (keys, d)
    for q0 in (0..s.t).step_by(BLOCK) {
        let rows = BLOCK.min(s.t - q0);
        let n = s.off + q0 + rows;
        let q = Mat { ptr: data[(s.start + q0) * dm.width + hi * d..].as_ptr(), rs: dm.width as isize, cs: 1 };
        let p = &mut p[..rows * n];
        // SAFETY: q covers rows × d (rows of the projection), Kᵀ d × n (n ≤ off + t cached
        // rows), and p holds rows × n.
        unsafe { sgemm(rows, n, d, q, k, p.as_mut_ptr(), n, false, Parallelism::None) };
        kernel::vectorized(|| {
            for r in 0..rows {
                let row = &mut p[r * n..(r + 1) * n];
                let (seen, hidden) = row.split_at_mut(s.off + q0 + r + 1);
                let max = kernel::max(seen) * dm.scale;
                let inv = 1.0 / kernel::exp_sum_in_place(seen, dm.scale, max);
                seen.iter_mut().for_each(|x| *x *= inv);
                hidden.fill(0.0);
            }
        });
        // Y[q0..q1] = P · V[0..n] into this head's columns; the task owns these rows × d.
        unsafe { sgemm(rows, d, n, Mat::rows(p, n), v, out.at((s.start + q0) * dm.c + hi * d), dm.c, false, Parallelism::None) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::causal_self_attention_reference;
    use candle_core::{Device, D};

    /// The explicit path for one sequence: split heads, rotate, append, repeat the key/value
    /// heads, attend with the mask after the cache.
    fn reference(qkv: &Tensor, cache: &mut KvCache, layer: usize, h: usize, kv: usize, rope: Option<&Rope>) -> Tensor {
        let (t, width) = qkv.dims2().unwrap();
        let d = width / (h + 2 * kv);
        let off = cache.layers.get(layer).map_or(0, |l| l.len);
        let split = |from: usize, n: usize| qkv.narrow(1, from * d, n * d).unwrap().reshape((1, t, n, d)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
        let (mut q, mut k, v) = (split(0, h), split(h, kv), split(h + kv, kv));
        if let Some(rope) = rope {
            q = rope.apply(&q, off).unwrap();
            k = rope.apply(&k, off).unwrap();
        }
        let (k, v) = cache.append(layer, &k, &v).unwrap();
        let rep = |x: Tensor| {
            let (b, kv, n, d) = x.dims4().unwrap();
            x.unsqueeze(2).unwrap().expand((b, kv, h / kv, n, d)).unwrap().reshape((b, h, n, d)).unwrap()
        };
        let mask = crate::causal_mask_after(t, off, qkv.device()).unwrap();
        let (y, _) = causal_self_attention_reference(&q, &rep(k), &rep(v), Some(&mask)).unwrap();
        y.transpose(1, 2).unwrap().reshape((t, h * d)).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(D::Minus1).unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn cached_attention_equals_the_explicit_path_for_ragged_batches() {
        let dev = Device::Cpu;
        let d = 8;
        for (h, kv, rope) in [(4, 4, false), (4, 2, true), (2, 1, true)] {
            let rope = rope.then(|| Rope::new(300, d, 10_000.0, &dev).unwrap());
            let width = (h + 2 * kv) * d;
            // Enough sequences that single-token steps take the one-task-per-sequence path.
            let n_seq = 2 * rayon::current_num_threads() + 1;
            let mut fused: Vec<KvCache> = (0..n_seq).map(|_| KvCache::new(2, 300)).collect();
            let mut explicit = fused.clone();
            // Ragged prompts (one longer than a block), then two single-token steps, then a
            // multi-token chunk on top of the cache (a chat turn).
            let cycle = |ls: &[usize]| -> Vec<usize> { (0..n_seq).map(|i| ls[i % ls.len()]).collect() };
            for (step, lens) in [cycle(&[5, 70, 1]), cycle(&[1]), cycle(&[1]), cycle(&[3, 1, 130])].into_iter().enumerate() {
                let n: usize = lens.iter().sum();
                let qkv = Tensor::randn(0f32, 1.0, (n, width), &dev).unwrap();
                for layer in 0..2 {
                    let mut refs: Vec<&mut KvCache> = fused.iter_mut().collect();
                    let got = cached_attention(&qkv, layer, &lens, &mut refs, h, kv, rope.as_ref()).unwrap();
                    let mut start = 0;
                    for (s, &t) in lens.iter().enumerate() {
                        let want = reference(&qkv.narrow(0, start, t).unwrap(), &mut explicit[s], layer, h, kv, rope.as_ref());
                        let diff = max_diff(&got.narrow(0, start, t).unwrap(), &want);
                        assert!(diff < 1e-5, "h {h} kv {kv} step {step} layer {layer} seq {s}: differs by {diff}");
                        start += t;
                    }
                }
            }
            for (a, b) in fused.iter().zip(&explicit) {
                assert_eq!(a.len(), b.len());
                for (la, lb) in a.layers.iter().zip(&b.layers) {
                    assert_eq!(la.k[..la.len * la.width], lb.k[..lb.len * lb.width], "cached keys differ");
                }
            }
        }
    }

    #[test]
    fn cached_attention_rejects_mismatched_chunks() {
        let dev = Device::Cpu;
        let qkv = Tensor::zeros((3, 24), DType::F32, &dev).unwrap();
        let mut c = KvCache::new(1, 16);
        let err = cached_attention(&qkv, 0, &[2], &mut [&mut c], 1, 1, None).unwrap_err().to_string();
        assert!(err.contains("chunk lengths"), "{err}");
        let err = cached_attention(&qkv, 0, &[3], &mut [&mut c], 5, 1, None).unwrap_err().to_string();
        assert!(err.contains("width"), "{err}");
    }
}
