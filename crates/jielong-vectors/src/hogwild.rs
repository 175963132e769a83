//! A matrix that several threads update at once without locks ("Hogwild!", Recht et al. 2011),
//! as word2vec.c and gensim train: each SGD step touches a handful of rows out of thousands, so
//! collisions are rare, and a lost update costs less than a lock on every step would.
//!
//! This is the crate's one unsafe abstraction. Rows are handed out as raw pointers; two threads
//! may read and write the same row at the same moment. The values stay finite floats either way
//! (every write is a whole `f32`; on the targets we build for an aligned 4-byte store is not
//! torn), but which update wins is not defined, which is why a multi-threaded run is not
//! reproducible bit for bit while a one-thread run is. Nothing else is shared: the matrix is
//! only read back ([`SharedMatrix::into_vec`]) after every worker has been joined.

use std::cell::UnsafeCell;

pub struct SharedMatrix {
    data: UnsafeCell<Vec<f32>>,
    ptr: *mut f32,
    pub rows: usize,
    pub dim: usize,
}

// SAFETY: see the module comment: concurrent racy access to rows is the documented intent;
// the Vec itself is never resized or freed while shared.
unsafe impl Sync for SharedMatrix {}
unsafe impl Send for SharedMatrix {}

impl SharedMatrix {
    pub fn new(data: Vec<f32>, rows: usize, dim: usize) -> Self {
        assert_eq!(data.len(), rows * dim, "matrix shape");
        let data = UnsafeCell::new(data);
        // SAFETY: the Vec lives inside self and is never reallocated.
        let ptr = unsafe { (*data.get()).as_mut_ptr() };
        SharedMatrix { data, ptr, rows, dim }
    }

    pub fn zeros(rows: usize, dim: usize) -> Self {
        Self::new(vec![0.0; rows * dim], rows, dim)
    }

    /// Pointer to row `i` (`dim` floats). Bounds are checked in debug builds.
    #[inline]
    pub fn row(&self, i: usize) -> *mut f32 {
        debug_assert!(i < self.rows);
        // SAFETY: i < rows, so the offset stays inside the allocation.
        unsafe { self.ptr.add(i * self.dim) }
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data.into_inner()
    }
}
