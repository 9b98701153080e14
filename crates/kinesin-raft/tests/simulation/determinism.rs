//! What makes a run repeat exactly: every source of randomness the process has is this thread's
//! seeded sequence.
//!
//! std's hash maps, tokio's scheduler and `select!`, and the `rand` generator openraft draws its
//! election timeouts from all seed themselves from the C library's `getrandom`. This binary
//! defines that function (build.rs exports it, so that lookups through `dlsym` find it too) and
//! answers from a per-thread SplitMix64 stream. Each run starts on a fresh thread after
//! [`reseed`], so whatever ran before on other threads cannot shift its sequence.

use std::cell::{Cell, RefCell};
use std::sync::Once;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0x4b49_4e45_5349_4e00) };
    /// Panics on this thread since [`take_panics`] was last called.
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Notes every panic on the thread it happens on (tokio would otherwise swallow a panic in a
/// spawned task, openraft's assertions among them), then reports it as before.
pub fn record_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = PANICS.try_with(|panics| panics.borrow_mut().push(info.to_string()));
            previous(info);
        }));
    });
}

/// The panics noted on this thread (see [`record_panics`]).
pub fn take_panics() -> Vec<String> {
    PANICS.with(|panics| std::mem::take(&mut *panics.borrow_mut()))
}

/// Starts this thread's random stream at `seed`.
pub fn reseed(seed: u64) {
    STATE.with(|state| state.set(seed ^ 0x9e37_79b9_7f4a_7c15));
}

/// The next value of the stream `state` holds (SplitMix64).
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fill(bytes: &mut [u8]) {
    let mut state = STATE.try_with(Cell::get).unwrap_or(0);
    for chunk in bytes.chunks_mut(8) {
        let value = splitmix64(&mut state).to_le_bytes();
        chunk.copy_from_slice(&value[..chunk.len()]);
    }
    let _ = STATE.try_with(|cell| cell.set(state));
}

/// The C library's `getrandom(2)` wrapper, answered from this thread's seeded stream.
///
/// # Safety
/// `buf` must point to `len` writable bytes, as `getrandom(2)` requires of its callers.
#[no_mangle]
pub unsafe extern "C" fn getrandom(buf: *mut u8, len: usize, _flags: u32) -> isize {
    if buf.is_null() {
        return -1;
    }
    // SAFETY: the caller passes a buffer of `len` writable bytes (getrandom's contract).
    fill(unsafe { std::slice::from_raw_parts_mut(buf, len) });
    len as isize
}

/// Part of the `seeds` check: the stream decides std's hash map order.
pub fn hash_order_follows_the_seed() -> Result<(), String> {
    use std::collections::HashMap;
    fn hash_order(seed: u64) -> Vec<u32> {
        std::thread::spawn(move || {
            reseed(seed);
            let map: HashMap<u32, ()> = (0..64).map(|k| (k, ())).collect();
            map.keys().copied().collect()
        })
        .join()
        .unwrap_or_default()
    }
    if hash_order(7) != hash_order(7) || hash_order(7) == hash_order(8) {
        return Err("std's hash maps do not follow the seeded getrandom".into());
    }
    Ok(())
}
