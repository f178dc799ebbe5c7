#![no_main]
//! Pixel decoding through every transfer syntax path (native, deflate, RLE, JPEG baseline and
//! 12-bit, JPEG lossless, JPEG-LS, JPEG 2000): header, then every frame (at most 16).
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(path) = common::scratch(data, "pixels.dcm") else { return };
    if let Ok(Some(header)) = focal_study::read_header(&path) {
        let frames: Vec<u32> = (0..header.frames.len().min(16) as u32).collect();
        let _ = focal_study::decode::decode_frames(&header, &frames);
    }
});
