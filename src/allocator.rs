//! The allocator's settings. mimalloc hands freed memory back to the OS `purge_delay` after it
//! fell free (1 s by default); under a steady load the same memory is asked for again moments
//! later and the kernel zeroes every page anew (`clear_page_erms`, ≈ 2% of the server's CPU in
//! `benches/results/profile-server-s9-now.txt`). Ten seconds keeps it across a steady load's
//! churn and still gives a spike's memory back soon after it (measured side by side:
//! `benches/results/ab-purge-delay.md`). `MIMALLOC_PURGE_DELAY` in the environment wins.

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// mimalloc v3's `mi_option_purge_delay` (libmimalloc-sys leaves it unnamed "for stability";
/// the test below checks that this index still holds the purge delay's default).
const PURGE_DELAY: mi_option_t = 15;

/// How long freed memory stays with the process before it goes back to the OS.
pub const PURGE_DELAY_MS: i64 = 10_000;

/// Applies the settings; call first thing in `main`.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a plain integer option; mimalloc reads it when it next purges.
        unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS as _) };
    }
}

/// The purge delay in force, in milliseconds.
pub fn purge_delay_ms() -> i64 {
    // SAFETY: reads a plain integer option.
    unsafe { mi_option_get(PURGE_DELAY) as i64 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_index_names_the_purge_delay() {
        // Nothing in the unit tests calls `tune`: the option has mimalloc's own default, 1,000
        // ms for the purge delay (v3 `options.c`) and a value no neighbouring option has.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(super::purge_delay_ms(), 1_000);
        }
    }
}
