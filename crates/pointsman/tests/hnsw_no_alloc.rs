//! Search must not allocate once the scratch and output vector are warm.
mod common;

use pointsman::routers::knn::hnsw::{Hnsw, HnswConfig, SearchScratch};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;
thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;

#[test]
fn search_is_allocation_free_when_warm() {
    let dim = 32;
    let n = 4000;
    let data = common::clustered_unit(n, dim, 40, 0.6, 3);
    let idx = Hnsw::build(
        &data,
        dim,
        &HnswConfig {
            m: 8,
            ef_construction: 64,
            ef_search: 64,
            seed: 1,
        },
    );
    let queries = common::clustered_unit(200, dim, 40, 0.6, 4);
    let mut s = SearchScratch::new(n);
    let mut out = Vec::new();
    // Warm up with the largest ef used below.
    for q in queries.chunks(dim) {
        idx.search(&data, q, 10, 256, &mut s, &mut out);
    }
    let before = ALLOCS.with(|c| c.get());
    for ef in [16, 64, 256] {
        for q in queries.chunks(dim) {
            idx.search(&data, q, 10, ef, &mut s, &mut out);
            assert_eq!(out.len(), 10);
        }
    }
    let after = ALLOCS.with(|c| c.get());
    assert_eq!(
        after - before,
        0,
        "search allocated {} times",
        after - before
    );
}
