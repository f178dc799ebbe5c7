#![no_main]
//! P-DATA reassembly (what a DICOM node sends, value by value): any sequence of command and
//! data fragments → messages or a refusal; never a panic or growth past the limits.
//! Input: records of [flags, length (u16 LE), bytes]; flags bit 0 = data (else command),
//! bit 1 = last fragment.
use focal_pacs::dimse::{Fragment, Limits, Reassembly};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Small limits, so that the fuzzer reaches them.
    let limits = Limits { max_command: 4096, max_data: 65536, seconds: 1 };
    let mut parts = Reassembly::new(limits);
    let mut rest = data;
    while rest.len() >= 3 {
        let (flags, len) = (rest[0], usize::from(u16::from_le_bytes([rest[1], rest[2]])));
        let take = len.min(rest.len() - 3);
        let value = Fragment { context: 1, command: flags & 1 == 0, last: flags & 2 == 2, data: &rest[3..3 + take] };
        rest = &rest[3 + take..];
        if parts.push(value).is_err() {
            return;
        }
        match parts.message() {
            Ok(Some(_)) => parts = Reassembly::new(limits),
            Ok(None) => {}
            Err(_) => return,
        }
    }
});
