//! One f32 matrix product on raw strided memory, for the fused kernels' forward and backward
//! passes. It calls the same `gemm` crate candle's CPU matmul uses, but lets a kernel read
//! transposed operands in place (no `contiguous()` copy), write into a buffer it owns and
//! accumulate into it, and pick the threading: for one big product, one band of output rows
//! per rayon thread; none when the caller already runs many small products in parallel.

use gemm::Parallelism;

/// A read-only matrix view: element (i, j) at `ptr[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

impl Mat {
    /// Row-major `data` with `cols` columns.
    pub fn rows(data: &[f32], cols: usize) -> Self {
        Self { ptr: data.as_ptr(), rs: cols as isize, cs: 1 }
    }
    /// The transpose of row-major `data` with `cols` columns (read in place).
    pub fn rows_t(data: &[f32], cols: usize) -> Self {
        Self { ptr: data.as_ptr(), rs: 1, cs: cols as isize }
    }
}

/// Threads for a product of `m·n·k`: the whole pool when big enough to share, else one.
pub(crate) fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && m * n * k >= 48 * 48 * 256 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// `dst (m, n)` row-major, leading dimension `ld`: dst = a·b, or dst += a·b with `accumulate`.
/// `a` is (m, k), `b` is (k, n).
///
/// # Safety
/// `a` and `b` must cover their (m, k) and (k, n) extents; `dst` must hold (m−1)·ld + n values.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(m: usize, n: usize, k: usize, a: Mat, b: Mat, dst: *mut f32, ld: usize, accumulate: bool, par: Parallelism) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                unsafe { std::ptr::write_bytes(dst.add(i * ld), 0, n) };
            }
        }
        return;
    }
    if let Parallelism::Rayon(threads) = par {
        if threads > 1 && m >= 2 * 64 {
            // One band of rows per thread, each a single-threaded product: one fork and join
            // per product instead of gemm's own split, which forks and joins for every block
            // of the inner dimension and for its packing. +3.5% (medium) and +5–7% (small)
            // training throughput on 2026-12-02 (BENCHMARKS.md).
            let band = m.div_ceil(threads).next_multiple_of(16);
            let dst = SendPtr(dst);
            let a = SendMat(a);
            let b = SendMat(b);
            rayon::scope(|s| {
                for r0 in (0..m).step_by(band) {
                    s.spawn(move |_| {
                        let (dst, a, b) = (dst, a, b);
                        let rows = band.min(m - r0);
                        let a = Mat { ptr: a.0.ptr.wrapping_offset(r0 as isize * a.0.rs), ..a.0 };
                        unsafe { one(rows, n, k, a, b.0, dst.0.add(r0 * ld), ld, accumulate, Parallelism::None) };
                    });
                }
            });
            return;
        }
    }
    unsafe { one(m, n, k, a, b, dst, ld, accumulate, par) }
}

/// Raw operands handed to the band tasks; each task touches only its own rows of `dst`.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
#[derive(Clone, Copy)]
struct SendMat(Mat);
unsafe impl Send for SendMat {}
unsafe impl Sync for SendMat {}

#[allow(clippy::too_many_arguments)]
unsafe fn one(m: usize, n: usize, k: usize, a: Mat, b: Mat, dst: *mut f32, ld: usize, accumulate: bool, par: Parallelism) {
    // gemm computes dst := alpha·dst + beta·a·b (alpha read only with read_dst).
    unsafe {
        gemm::gemm(m, n, k, dst, 1, ld as isize, accumulate, a.ptr, a.cs, a.rs, b.ptr, b.cs, b.rs, 1.0f32, 1.0f32, false, false, false, par);
    }
}

/// `dst (m, n)` = a·b for row-major f32 slices, where `a` is (m, k), or its transpose stored
/// (k, m) with `a_t`, and `b` is (k, n), or its transpose stored (n, k) with `b_t`; threaded
/// over the rayon pool as the fused kernels thread theirs. For benchmarks
/// (`examples/gemm_shapes.rs`) and callers outside this crate.
#[allow(clippy::too_many_arguments)]
pub fn matmul_f32(m: usize, n: usize, k: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool, dst: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && dst.len() >= m * n, "matmul_f32: operand shorter than its extent");
    let a = if a_t { Mat::rows_t(a, m) } else { Mat::rows(a, k) };
    let b = if b_t { Mat::rows_t(b, k) } else { Mat::rows(b, n) };
    // SAFETY: the lengths were checked against the extents above.
    unsafe { sgemm(m, n, k, a, b, dst.as_mut_ptr(), n, false, parallelism(m, n, k)) }
}

#[cfg(test)]
mod tests {
    use super::matmul_f32;

    /// Both operand layouts, shapes off every tile size, and one product large enough to be
    /// split into bands of rows across threads, against a plain f64 triple loop.
    #[test]
    fn matmul_f32_matches_a_triple_loop_in_every_layout() {
        let value = |i: usize, salt: usize| (((i * 7919 + salt * 104_729) % 2003) as f32 / 1001.0) - 1.0;
        for (m, n, k) in [(1, 1, 1), (7, 13, 5), (300, 70, 130)] {
            for (a_t, b_t) in [(false, false), (true, false), (false, true), (true, true)] {
                let a: Vec<f32> = (0..m * k).map(|i| value(i, 1)).collect();
                let b: Vec<f32> = (0..k * n).map(|i| value(i, 2)).collect();
                let at = |i: usize, p: usize| if a_t { a[p * m + i] } else { a[i * k + p] };
                let bt = |p: usize, j: usize| if b_t { b[j * k + p] } else { b[p * n + j] };
                let mut dst = vec![f32::NAN; m * n];
                matmul_f32(m, n, k, &a, a_t, &b, b_t, &mut dst);
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
                        let got = dst[i * n + j] as f64;
                        assert!((got - want).abs() < 1e-4, "({m},{n},{k}) a_t={a_t} b_t={b_t} at ({i},{j}): {got} vs {want}");
                    }
                }
            }
        }
    }
}
