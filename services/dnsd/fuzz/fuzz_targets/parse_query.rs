//! Any bytes into `dnsd::query::parse_query`: it must return, never
//! panic. The unit test `resolver::tests::never_panics_on_mutated_input`
//! runs the same function (and the resolver after it) over mutated
//! queries on stable Rust, so CI exercises it too.
//!
//! Run in `services/dnsd/fuzz` (cargo-fuzz passes nightly flags; on the
//! stable toolchain `RUSTC_BOOTSTRAP=1` allows them):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run parse_query -- -max_total_time=60`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dnsd::query::parse_query(data);
});
