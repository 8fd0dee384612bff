//! Any bytes into `bus_schema::control::decode_frame`, as ctld decodes
//! every request a client sends (and oxctl every response): it must
//! return, never panic, and never allocate past the frame limit. The
//! unit test `control::tests::decoding_never_panics_on_mutated_frames`
//! runs the same function over mutated frames on stable Rust, so CI
//! exercises it too.
//!
//! Run in `bus-schema/fuzz` (cargo-fuzz passes nightly flags; on the
//! stable toolchain `RUSTC_BOOTSTRAP=1` allows them):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run control_frame -- -max_total_time=60`.

#![no_main]

use bus_schema::control::{MAX_REQUEST, MAX_RESPONSE, Request, Response, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame::<Request>(data, MAX_REQUEST);
    let _ = decode_frame::<Response>(data, MAX_RESPONSE);
});
