#![no_main]
//! What a DICOMweb server answers: a multipart/related body (the first line of the input is
//! its boundary) and DICOM JSON (the whole input) turned into query rows at both levels; any
//! bytes → parts, rows or an error, never a panic.
use focal_pacs::dicomweb::{dicom_json, multipart_parts, qido_rows};
use focal_pacs::query::FindLevel;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(nl) = data.iter().position(|&b| b == b'\n') {
        if let Ok(boundary) = std::str::from_utf8(&data[..nl]) {
            let _ = multipart_parts(&data[nl + 1..], boundary.trim());
        }
    }
    if let Some(items) = dicom_json(data) {
        let _ = qido_rows(&items, FindLevel::Study);
        let _ = qido_rows(&items, FindLevel::Series);
    }
});
