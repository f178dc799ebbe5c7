#![no_main]
//! Model manifests: any bytes → a manifest or a named refusal; never a panic. (The checks on
//! the files a manifest names run when a model is opened; here no file beside it exists.)
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Some(path) = common::scratch(data, "manifest.json") {
        if let Ok(m) = focal_inference::Manifest::load(&path) {
            let _ = m.extractor_files();
            let _ = m.input_channels();
        }
    }
});
