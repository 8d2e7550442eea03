//! Reused f32 buffers for the CPU training step's large outputs, so that a buffer the
//! kernels are about to overwrite whole is not zero-filled first.
//!
//! A fresh `vec![0.0; n]` is filled by the calling thread, which then leaves every cache
//! line of it in that core's cache for the pool threads to pull over: with the host running
//! the two cores on different dies (`nmt bench core-to-core` ~330 ns), the 512/16k step's
//! forward buffers alone (gates, h and c of every layer, ~15 MB a layer) cost 30-50 ms a
//! step that way. A buffer from here holds stale values instead of zeros; callers take one
//! only for what they write in full before reading it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Buffers given back and not yet taken again, at most this many.
const KEPT: usize = 64;

/// Whether `take` fills what it hands out with NaN (`poison`).
static POISON: AtomicBool = AtomicBool::new(false);

/// For tests: from now on every buffer `take` hands out is NaN throughout, so an element a
/// kernel fails to write shows up in its results.
pub fn poison() {
    POISON.store(true, Ordering::Relaxed);
}

thread_local! {
    static FREE: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` floats with unspecified (stale) values: one given back earlier when one
/// is long enough (the shortest such), else a new one of zeros.
pub fn take(len: usize) -> Vec<f32> {
    let found = FREE.with(|free| {
        let mut free = free.borrow_mut();
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.len() >= len)
            .min_by_key(|(_, v)| v.len())
            .map(|(i, _)| i);
        best.map(|i| free.swap_remove(i))
    });
    let mut v = match found {
        Some(mut v) => {
            v.truncate(len);
            v
        }
        None => vec![0f32; len],
    };
    if POISON.load(Ordering::Relaxed) {
        v.fill(f32::NAN);
    }
    v
}

/// Gives a buffer back for a later `take` on this thread (the oldest is dropped past
/// `KEPT`).
pub fn give(v: Vec<f32>) {
    if v.is_empty() {
        return;
    }
    FREE.with(|free| {
        let mut free = free.borrow_mut();
        if free.len() == KEPT {
            free.remove(0);
        }
        free.push(v);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_comes_back_at_the_asked_length() {
        let mut v = take(10);
        assert_eq!(v, vec![0.0; 10]);
        v.iter_mut().for_each(|x| *x = 7.0);
        give(v);
        // The shortest long-enough one, cut to length, its values as they were.
        give(vec![1.0; 100]);
        let again = take(4);
        assert_eq!(again, vec![7.0; 4]);
        assert_eq!(take(50), vec![1.0; 50]);
        assert_eq!(take(3), vec![0.0; 3], "nothing left: a new zeroed one");
    }
}
