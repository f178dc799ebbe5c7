#![no_main]
//! Header scanning: any bytes → a header, "not DICOM", or an error; never a panic, hang or
//! unbounded allocation.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Some(path) = common::scratch(data, "header.dcm") {
        let _ = focal_study::read_header(&path);
    }
});
