//! What the fused CPU kernels share: reading a candle CPU storage as one contiguous f32 slice.

use candle_core::{CpuStorage, Layout, Result};

/// The f32 data of a contiguous tensor, or an error naming the kernel and operand.
pub(crate) fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}
