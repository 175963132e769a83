//! One f32 matrix product on raw strided memory, for the fused kernels' forward and backward
//! passes. It calls the same `gemm` crate candle's CPU matmul uses, but lets a kernel read
//! transposed operands in place (no `contiguous()` copy), write into a buffer it owns and
//! accumulate into it, and pick the threading: the whole rayon pool for one big product,
//! none when the caller already runs many small products in parallel.

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
    // gemm computes dst := alpha·dst + beta·a·b (alpha read only with read_dst).
    unsafe {
        gemm::gemm(m, n, k, dst, 1, ld as isize, accumulate, a.ptr, a.cs, a.rs, b.ptr, b.cs, b.rs, 1.0f32, 1.0f32, false, false, false, par);
    }
}
