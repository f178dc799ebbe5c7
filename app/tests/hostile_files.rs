//! Hostile files, generated in the test run from a real sample slice and real compressed files:
//! truncated at every element boundary, lying element lengths, an undefined-length sequence
//! that never ends, deeply nested sequences, sizes claiming terabytes, pixel data shorter than
//! claimed, compressed frames that decode to the wrong size. Each must give a specific error;
//! the good series in the same folder must still open whole; peak memory is measured.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use focal::study::{self, Progress, StudySet, decode};

const HOSTILE_SERIES: &str = "1.2.826.0.1.3680043.10.543.999";

/// Element start offsets of an explicit-VR little-endian Part 10 file (top level only).
fn element_starts(bytes: &[u8]) -> Vec<usize> {
    let long = [
        b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
    ];
    let mut starts = Vec::new();
    let mut at = 132;
    while at + 8 <= bytes.len() {
        starts.push(at);
        let vr = &bytes[at + 4..at + 6];
        let (len, header) = if long.iter().any(|l| l[..] == vr[..]) {
            (
                u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4")) as usize,
                12,
            )
        } else {
            (
                u16::from_le_bytes(bytes[at + 6..at + 8].try_into().expect("2")) as usize,
                8,
            )
        };
        if len == 0xFFFF_FFFF {
            break; // the sample has no undefined lengths; stop rather than guess
        }
        at += header + len;
    }
    starts
}

fn with_series(mut obj: dicom_object::DefaultDicomObject, n: usize) -> dicom_object::DefaultDicomObject {
    obj.put(DataElement::new(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(HOSTILE_SERIES),
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(format!("{HOSTILE_SERIES}.{n}")),
    ));
    obj
}

fn write(obj: &dicom_object::DefaultDicomObject, path: &Path) -> Vec<u8> {
    obj.write_to_file(path).expect("write");
    std::fs::read(path).expect("read back")
}

/// Builds every hostile file into `dir`; returns (category, path) pairs.
fn make_hostile(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let sample = common::repo().join("assets/sample-study");
    let first = std::fs::read_dir(&sample)
        .expect("sample")
        .next()
        .expect("a file")
        .expect("entry")
        .path();
    let base = with_series(dicom_object::open_file(&first).expect("sample slice"), 0);
    let scratch = dir.join("base.tmp");
    let bytes = write(&base, &scratch);
    std::fs::remove_file(&scratch).expect("rm");
    let starts = element_starts(&bytes);
    let pixel_at = *starts
        .iter()
        .find(|&&s| bytes[s..s + 4] == [0xE0, 0x7F, 0x10, 0x00])
        .expect("pixel data element");
    let mut files = Vec::new();
    let mut put = |category: &'static str, name: String, data: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, data).expect("write");
        files.push((category, p));
    };

    for (k, &s) in starts.iter().enumerate() {
        put("truncated", format!("trunc-{k:03}.dcm"), bytes[..s].to_vec());
    }
    // Lying lengths on every element with a 4-byte length (pixel data included).
    for (k, &s) in starts.iter().enumerate() {
        if [b"OB", b"OW", b"UN", b"UT", b"SQ"]
            .iter()
            .any(|v| bytes[s + 4..s + 6] == v[..])
        {
            let mut v = bytes.clone();
            v[s + 8..s + 12].copy_from_slice(&0x7FFF_FFF0u32.to_le_bytes());
            put("lying length", format!("lying-{k:03}.dcm"), v);
        }
    }
    // Lying 2-byte lengths: each short element claims 65535 bytes, swallowing what follows.
    for (k, &s) in starts.iter().enumerate().filter(|(_, s)| **s > 132 + 12) {
        if ![b"OB", b"OW", b"UN", b"UT", b"SQ"]
            .iter()
            .any(|v| bytes[s + 4..s + 6] == v[..])
        {
            let mut v = bytes.clone();
            v[s + 6..s + 8].copy_from_slice(&0xFFFFu16.to_le_bytes());
            put("lying short length", format!("lying-short-{k:03}.dcm"), v);
        }
    }
    let head = &bytes[..pixel_at];
    let sq = |v: &mut Vec<u8>| v.extend_from_slice(&[0x08, 0x00, 0x40, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    let item = |v: &mut Vec<u8>| v.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    // An undefined-length sequence whose item never ends.
    let mut v = head.to_vec();
    sq(&mut v);
    item(&mut v);
    v.extend_from_slice(&[0x08, 0x00, 0x00, 0x01, b'S', b'H', 4, 0, b'A', b'B', b'C', b'D']);
    put("unterminated sequence", "endless-sq.dcm".into(), v);
    // 10,000 properly delimited nested sequences, then the pixel data.
    let mut v = head.to_vec();
    for _ in 0..10_000 {
        sq(&mut v);
        item(&mut v);
    }
    for _ in 0..10_000 {
        v.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    }
    v.extend_from_slice(&bytes[pixel_at..]);
    put("nested sequences", "nested.dcm".into(), v);

    // Sizes: terabytes claimed; pixel data shorter than claimed.
    let mut o = base.clone();
    o.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(65535u16)));
    o.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(65535u16)));
    o.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("99999999"),
    ));
    let p = dir.join("terabytes.dcm");
    write(&o, &p);
    files.push(("terabytes", p));
    let mut o = base.clone();
    o.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(434u16)));
    let p = dir.join("short-pixels.dcm");
    write(&o, &p);
    files.push(("pixel data too short", p));

    // Compressed frames that decode to the wrong size: real files whose Rows is made larger.
    let corpus = common::corpus();
    for (k, name) in [
        "MR_small_RLE.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "JPGExtended.dcm",
        "JPEG-lossless.dcm",
    ]
    .iter()
    .enumerate()
    {
        let Ok(obj) = dicom_object::open_file(corpus.files.join("pydicom/data/test_files").join(name)) else {
            continue;
        };
        let rows = obj
            .element(tags::ROWS)
            .ok()
            .and_then(|e| e.to_int::<u16>().ok())
            .unwrap_or(64);
        let mut o = with_series(obj, 100 + k);
        o.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(rows + 7)));
        let p = dir.join(format!("wrong-size-{name}"));
        write(&o, &p);
        files.push(("compressed wrong size", p));
    }
    files
}

/// What reading and decoding one file says: Ok(None) for "not DICOM", Err(message) otherwise.
fn outcome(path: &Path) -> Result<Option<()>, String> {
    match study::read_header(path) {
        Err(e) => Err(study::error_chain(&e)),
        Ok(None) => Ok(None),
        Ok(Some(h)) => {
            let frames: Vec<u32> = (0..h.frames.len().max(1) as u32).collect();
            match decode::decode_frames(&h, &frames) {
                Err(e) => Err(study::error_chain(&e)),
                Ok(_) => Ok(Some(())),
            }
        }
    }
}

fn peak_rss_kb(args: &[&str]) -> u64 {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let (out, kb) = common::run_focal_measured(&args);
    assert!(
        kb != u64::MAX,
        "no peak RSS in: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    kb
}

#[test]
fn hostile_files_give_specific_errors_and_the_rest_still_opens() {
    let tmp = tempfile::tempdir().expect("tmp");
    let folder = tmp.path().join("study");
    std::fs::create_dir(&folder).expect("mkdir");
    let hostile = make_hostile(&folder);
    if std::env::var_os("FOCAL_KEEP_HOSTILE").is_some() {
        let kept = tmp.path().to_path_buf();
        std::mem::forget(tmp);
        eprintln!("hostile files kept in {}", kept.display());
        return;
    }
    let expect = |category: &str| -> &[&str] {
        match category {
            "truncated" => &[
                "truncated",
                "no pixel data",
                "claims",
                "not a valid DICOM",
                "cannot read",
            ],
            "lying length" => &["claims", "truncated or lying"],
            "lying short length" => &[
                "claims",
                "not a valid DICOM",
                "no pixel data",
                "pixel data is",
                "cannot be real",
            ],
            "unterminated sequence" => &["claims", "sequence", "truncated", "end"],
            "nested sequences" => &["nested deeper"],
            "terabytes" => &["cannot be real", "refusing to allocate"],
            "pixel data too short" => &["pixel data is", "truncated or lying"],
            _ => &["decoded", "expected", "decoding failed", "claims"],
        }
    };
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut not_dicom = 0;
    for (category, path) in &hostile {
        *counts.entry(category).or_default() += 1;
        match outcome(path) {
            Err(message) => assert!(
                expect(category).iter().any(|k| message.contains(k)),
                "{category} {}: unspecific error {message:?}",
                path.display()
            ),
            Ok(None) if *category == "truncated" => not_dicom += 1,
            Ok(_) => panic!("{category} {} was read without an error", path.display()),
        }
    }
    eprintln!("hostile files: {counts:?} ({not_dicom} truncations read as not DICOM)");
    assert!(counts["truncated"] > 20 && counts["lying length"] >= 1 && counts["compressed wrong size"] >= 4);

    // The good series beside them opens and decodes whole.
    let sample = common::repo().join("assets/sample-study");
    for e in std::fs::read_dir(&sample).expect("sample") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, folder.join(p.file_name().expect("name"))).expect("copy");
    }
    let set = StudySet::open(&[folder.clone()], &|_: Progress| {}, &AtomicBool::new(false)).expect("folder opens");
    let good = set
        .find_series(&common::sample_series_uid())
        .expect("the good series is found");
    let stack = good.stacks.iter().max_by_key(|s| s.slices.len()).expect("stack");
    assert_eq!(stack.slices.len(), 89);
    let volume = study::load_volume(stack, &|_| {}, &AtomicBool::new(false)).expect("volume");
    assert!(volume.skipped.is_empty(), "{:?}", volume.skipped);
    assert!(!set.unreadable.is_empty() && set.unreadable.iter().all(|u| !u.reason.is_empty()));

    // Peak memory: the whole folder decoded by the CLI, and the worst single hostile file.
    let folder_kb = peak_rss_kb(&["info", "--decode", folder.to_str().expect("utf8")]);
    let mut worst = (0, String::new());
    let mut seen = std::collections::BTreeSet::new();
    for (category, path) in &hostile {
        if seen.insert(*category) || *category == "nested sequences" || *category == "terabytes" {
            let kb = peak_rss_kb(&["info", "--decode", path.to_str().expect("utf8")]);
            if kb > worst.0 {
                worst = (
                    kb,
                    format!("{category} ({})", path.file_name().expect("name").to_string_lossy()),
                );
            }
        }
    }
    eprintln!(
        "peak RSS: folder with {} hostile files + 89 good: {} MiB; worst single file: {} MiB, {}",
        hostile.len(),
        folder_kb / 1024,
        worst.0 / 1024,
        worst.1
    );
    // Bounded: far below what the files claim (terabytes) and below a small desktop's memory.
    assert!(folder_kb < 1024 * 1024, "peak RSS {folder_kb} KiB");
    assert!(worst.0 < 512 * 1024, "peak RSS {} KiB on {}", worst.0, worst.1);
}
