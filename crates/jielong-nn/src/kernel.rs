//! What the fused CPU kernels share: reading a candle CPU storage as one contiguous f32 slice.

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// The f32 data of a contiguous tensor, or an error naming the kernel and operand.
pub(crate) fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

/// Runs `f` on the f32 data of CPU tensors (each made contiguous by the caller), named by
/// `what` in errors: how a fused kernel's backward, which receives tensors rather than
/// storages, reads its operands without copying them.
pub(crate) fn with_f32<const N: usize, R>(ts: [(&Tensor, &str); N], f: impl FnOnce([&[f32]; N]) -> Result<R>) -> Result<R> {
    let guards: Vec<_> = ts.iter().map(|(t, _)| t.storage_and_layout()).collect();
    let mut slices: [&[f32]; N] = [&[]; N];
    for (i, ((s, l), (_, what))) in guards.iter().zip(&ts).enumerate() {
        let Storage::Cpu(s) = &**s else { candle_core::bail!("{what}: the fused kernels run on the CPU only") };
        slices[i] = contiguous_f32(s, l, what)?;
    }
    f(slices)
}

/// Σ of a parallel iterator's items, added in index order: the items are computed in
/// parallel, collected, then summed serially. rayon's `sum()` and `reduce()` group the
/// partial sums by how the work happened to be split and stolen, which varies from run to
/// run, and floating-point addition is not associative: a training run through them is not
/// reproducible bit for bit (a resumed run drifts from an uninterrupted one).
pub(crate) fn sum_in_order<I: rayon::iter::IndexedParallelIterator<Item = f64>>(items: I) -> f64 {
    let parts: Vec<f64> = items.collect();
    parts.iter().sum()
}

/// `out` = Σ of equal-length partial sums, added in their order (see `sum_in_order`): how a
/// kernel that sums over rows in parallel blocks combines the blocks' partials.
pub(crate) fn add_in_order(partials: Vec<Vec<f32>>, out: &mut [f32]) {
    out.fill(0.0);
    for p in partials {
        out.iter_mut().zip(&p).for_each(|(o, v)| *o += v);
    }
}

/// An output buffer of `n` f32 values that is not zero-filled, for a kernel that writes every
/// element before anything reads it (a product with `accumulate = false`, an element-wise map,
/// a row-wise pass that writes whole rows). `vec![0.0; n]` on reused memory is a serial
/// `memset` on the calling thread while the other threads wait: about 7% of a medium training
/// step before this helper (BENCHMARKS.md, 2026-12-02). Each call site says why it writes all.
#[allow(clippy::uninit_vec)] // on purpose: the zero-fill is what this helper exists to avoid
pub(crate) fn uninit_f32(n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: f32 is plain data (no drop, every bit pattern a value); callers write all `n`
    // elements before reading any, as candle's own CPU kernels do with their outputs.
    unsafe { v.set_len(n) };
    v
}

/// Runs `f` compiled for AVX-512 (16 lanes) or AVX2 + FMA (8 lanes), whichever the CPU has
/// (checked once, then cached), so the element-wise loops inside vectorise on a binary built
/// for plain x86-64; elsewhere `f` runs as it is.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: the CPU supports the features `avx512` is compiled for.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            // SAFETY: the CPU supports the features `avx2` is compiled for.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// eˣ in f32 without branches or calls, so that loops over slices vectorise: x = n·ln2 + r with
/// |r| ≤ ln2/2, eʳ from Cephes' degree-6 polynomial, 2ⁿ built in the exponent bits. Within
/// 2 ulp of the true value on [−87, 88] (see the test); inputs beyond are clamped there, so
/// very negative x gives ≈ 1e−38 rather than 0 and very positive x stays finite.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding it rounds to an integer, which then sits in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    // Not `clamp`: max/min map to single vector instructions, and a NaN comes out as e⁻⁸⁷.
    #[allow(clippy::manual_clamp)]
    let x = x.max(-87.0).min(88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5) * r * r + r + 1.0;
    let two_n = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    p * two_n
}

/// Largest value of a slice (−∞ for an empty one), eight running maxima so it vectorises.
#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    tail.iter().chain(acc.iter()).fold(f32::NEG_INFINITY, |m, &x| m.max(x))
}

/// xᵢ ← exp(xᵢ·scale − shift) in place; returns Σ of the new values (eight running sums).
#[inline(always)]
pub(crate) fn exp_sum_in_place(xs: &mut [f32], scale: f32, shift: f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = xs.chunks_exact_mut(8);
    for c in &mut chunks {
        for i in 0..8 {
            c[i] = exp(c[i] * scale - shift);
            acc[i] += c[i];
        }
    }
    let mut sum = 0f32;
    for x in chunks.into_remainder() {
        *x = exp(*x * scale - shift);
        sum += *x;
    }
    sum + acc.iter().sum::<f32>()
}

/// Σ exp(xᵢ − shift) without writing anything.
#[inline(always)]
pub(crate) fn exp_sum(xs: &[f32], shift: f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += exp(c[i] - shift);
        }
    }
    tail.iter().map(|&x| exp(x - shift)).sum::<f32>() + acc.iter().sum::<f32>()
}

/// Σᵢ f(i) for i in 0..n, with eight running sums so the loop vectorises.
#[inline(always)]
pub(crate) fn lanes_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let full = n / 8 * 8;
    let mut i = 0;
    while i < full {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
        i += 8;
    }
    (full..n).map(&f).sum::<f32>() + acc.iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_within_two_ulp_of_libm() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, libm) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max(((ours - libm) / libm).abs());
            x += 0.001_37;
        }
        assert!(worst < 2.5 * f32::EPSILON as f64, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37 && exp(1000.0).is_finite());
    }

    #[test]
    fn vectorised_reductions_match_plain_loops() {
        for n in [0usize, 1, 7, 8, 9, 100, 1027] {
            let xs: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let plain_max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&xs), plain_max);
            let m = if n == 0 { 0.0 } else { plain_max };
            let plain: f64 = xs.iter().map(|&x| ((x - m) as f64).exp()).sum();
            let ours = vectorized(|| exp_sum(&xs, m)) as f64;
            assert!((ours - plain).abs() <= 1e-5 * plain.max(1.0), "n {n}: {ours} vs {plain}");
            let mut ys = xs.clone();
            let s = vectorized(|| exp_sum_in_place(&mut ys, 1.0, m)) as f64;
            assert!((s - plain).abs() <= 1e-5 * plain.max(1.0));
        }
    }
}
