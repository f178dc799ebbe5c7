#![no_main]
//! DICOMDIR reading: the referenced-file list, and a full scan of the folder it sits in.
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Some(path) = common::scratch(data, "DICOMDIR") {
        let _ = focal_study::scan::dicomdir_files(&path);
    }
});
