//! The study layer on real files: sorting, DICOMDIR, padding, hostile input, memory bombs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use focal::study::{self, Progress, StudyError, StudySet, decode, geometry};

fn no_progress(_: Progress) {}

fn open(paths: &[PathBuf]) -> StudySet {
    StudySet::open(paths, &no_progress, &AtomicBool::new(false)).expect("scan succeeds")
}

fn test_files(c: &common::Corpus) -> PathBuf {
    c.files.join("pydicom/data/test_files")
}

/// Copies a real 5-slice CT series under random names, with InstanceNumbers scrambled, and
/// checks the stack comes out ordered along the slice normal all the same.
#[test]
fn series_sort_by_position_not_name_or_instance_number() {
    let c = common::corpus();
    let source = test_files(&c).join("dicomdirtests/98892001/CT5N");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&source)
        .expect("series folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 5);
    // Deterministic shuffle of names and instance numbers.
    let names = ["zz", "a1", "m", "0b", "q7"];
    let numbers = ["3", "1", "5", "2", "4"];
    for (i, f) in files.iter().enumerate() {
        let mut obj = dicom_object::open_file(f).expect("real file opens");
        obj.put(DataElement::new(
            tags::INSTANCE_NUMBER,
            VR::IS,
            PrimitiveValue::from(numbers[i]),
        ));
        obj.write_to_file(tmp.path().join(names[(i * 3) % 5]))
            .expect("write copy");
    }
    let set = open(&[tmp.path().to_path_buf()]);
    let series: Vec<_> = set.series().collect();
    assert_eq!(series.len(), 1);
    let stack = &series[0].stacks[0];
    assert_eq!(stack.slices.len(), 5);
    let iop = stack.slices[0].info().orientation.expect("orientation");
    let n = geometry::normal(&iop);
    let d: Vec<f64> = stack
        .slices
        .iter()
        .map(|s| geometry::dot(&s.info().position.expect("position"), &n))
        .collect();
    assert!(d.windows(2).all(|w| w[1] > w[0]), "not sorted along the normal: {d:?}");
    // The same order as reading the untouched originals.
    let original = open(&[source]);
    let o = &original.series().next().expect("series").stacks[0];
    let od: Vec<f64> = o
        .slices
        .iter()
        .map(|s| geometry::dot(&s.info().position.expect("position"), &n))
        .collect();
    assert_eq!(d, od);
    let g = stack.geometry.as_ref().expect("geometry");
    assert!((g.origin[2] - stack.slices[0].info().position.expect("p")[2]).abs() < 1e-9);
}

#[test]
fn dicomdir_lists_the_same_series_as_its_folder() {
    let c = common::corpus();
    let root = test_files(&c).join("dicomdirtests");
    let via_dir = open(&[root.join("DICOMDIR")]);
    let mut uids: Vec<(String, usize)> = via_dir
        .series()
        .map(|s| (s.uid.clone(), s.stacks.iter().map(|st| st.slices.len()).sum()))
        .collect();
    uids.sort();
    assert!(uids.len() >= 10, "DICOMDIR gave only {} series", uids.len());
    let via_folder = open(&[root.join("77654033"), root.join("98892001"), root.join("98892003")]);
    let mut folder: Vec<(String, usize)> = via_folder
        .series()
        .map(|s| (s.uid.clone(), s.stacks.iter().map(|st| st.slices.len()).sum()))
        .collect();
    folder.sort();
    assert_eq!(uids, folder);
    assert!(via_dir.unreadable.is_empty(), "{:?}", via_dir.unreadable);
}

#[test]
fn a_three_plane_localizer_becomes_three_stacks() {
    let c = common::corpus();
    let set = open(&[test_files(&c).join("dicomdirtests/98892003/MR2")]);
    let series = set.series().next().expect("series");
    let mut planes: Vec<&str> = series.stacks.iter().filter_map(|s| s.plane).collect();
    planes.sort();
    assert_eq!(planes, ["axial", "coronal", "sagittal"]);
}

fn decode_all(path: &Path) -> Result<Vec<decode::FrameValues>, StudyError> {
    let header = study::read_header(path)?.ok_or(StudyError::Parse("not DICOM".into()))?;
    let frames = header.pixels.as_ref().map_or(0, |p| p.frames);
    decode::decode_frames(&header, &(0..frames).collect::<Vec<_>>())
}

#[test]
fn trailing_padding_after_pixel_data_is_tolerated() {
    let c = common::corpus();
    let original = test_files(&c).join("MR_small.dcm");
    let tmp = tempfile::tempdir().expect("tempdir");
    let padded = tmp.path().join("padded.dcm");
    let mut bytes = std::fs::read(&original).expect("read");
    bytes.extend(std::iter::repeat_n(0u8, 37)); // zero padding, not a whole element
    std::fs::write(&padded, &bytes).expect("write");
    let a = decode_all(&original).expect("original decodes");
    let b = decode_all(&padded).expect("padded file decodes");
    assert_eq!(a[0].values, b[0].values);
}

#[test]
fn impossible_sizes_are_refused_before_allocation() {
    let c = common::corpus();
    let tmp = tempfile::tempdir().expect("tempdir");
    let bomb = tmp.path().join("bomb.dcm");
    let mut obj = dicom_object::open_file(test_files(&c).join("MR_small.dcm")).expect("opens");
    obj.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(65535u16)));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(65535u16)));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("100000"),
    ));
    obj.write_to_file(&bomb).expect("write");
    match decode_all(&bomb) {
        Err(StudyError::ImplausibleSize { .. }) => {}
        other => panic!("expected ImplausibleSize, got {:?}", other.map(|v| v.len())),
    }
    // Claims more native pixel data than the file holds.
    let mut obj = dicom_object::open_file(test_files(&c).join("MR_small.dcm")).expect("opens");
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("40"),
    ));
    let lying = tmp.path().join("lying.dcm");
    obj.write_to_file(&lying).expect("write");
    assert!(matches!(decode_all(&lying), Err(StudyError::PixelDataTooShort { .. })));
}

/// Truncations, bit flips and overwritten lengths of real files (several codecs) must give
/// a result or an error, never a panic; and a folder holding them still opens the good files.
#[test]
fn malformed_files_give_errors_not_panics() {
    let c = common::corpus();
    let dir = test_files(&c);
    let seeds = [
        "MR_small.dcm",
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "JPEG2000.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "JPGExtended.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut rng = 0x2545F4914F6CDD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut made = 0;
    for seed in seeds {
        let path = dir.join(seed);
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for k in 1..24 {
            variants.push(bytes[..bytes.len() * k / 24].to_vec());
        }
        for _ in 0..24 {
            let mut v = bytes.clone();
            for _ in 0..8 {
                let i = (next() as usize) % v.len();
                v[i] ^= 1 << (next() % 8);
            }
            variants.push(v);
        }
        for _ in 0..12 {
            // Overwrite a 4-byte run after the meta group with a huge length.
            let mut v = bytes.clone();
            let i = 140 + (next() as usize) % (v.len().saturating_sub(150)).max(1);
            v[i..i + 4].copy_from_slice(&[0xF0, 0xFF, 0xFF, 0x7F]);
            variants.push(v);
        }
        for (k, v) in variants.into_iter().enumerate() {
            let p = tmp.path().join(format!("{seed}.{k}"));
            std::fs::write(&p, v).expect("write variant");
            let _ = decode_all(&p); // must return, Ok or Err
            made += 1;
        }
    }
    assert!(made > 300, "only {made} variants");
    std::fs::copy(dir.join("CT_small.dcm"), tmp.path().join("good.dcm")).expect("copy");
    let set = open(&[tmp.path().to_path_buf()]);
    assert!(!set.unreadable.is_empty(), "broken files must be listed");
    assert!(set.unreadable.iter().all(|u| !u.reason.is_empty()));
    assert!(set.series().any(|s| {
        s.stacks
            .iter()
            .any(|st| st.slices.iter().any(|sl| sl.instance.path.ends_with("good.dcm")))
    }));
}

#[test]
fn volume_loads_in_order_with_geometry_and_progress() {
    let c = common::corpus();
    let set = open(&[test_files(&c).join("dicomdirtests/98892001/CT5N")]);
    let stack = &set.series().next().expect("series").stacks[0];
    let done = std::sync::atomic::AtomicUsize::new(0);
    let volume = study::load_volume(
        stack,
        &|p: Progress| {
            done.fetch_max(p.done, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(p.total, 5);
        },
        &AtomicBool::new(false),
    )
    .expect("volume");
    assert_eq!(done.into_inner(), 5);
    assert_eq!((volume.slices, volume.channels), (5, 1));
    assert!(volume.skipped.is_empty());
    for (k, s) in stack.slices.iter().enumerate() {
        let single = study::load_slice(stack, k).expect("slice");
        assert_eq!(
            volume.slice(k).expect("plane"),
            &single.values[..],
            "slice {k} misplaced ({})",
            s.instance.path.display()
        );
    }
    let cancelled = study::load_volume(stack, &no_progress, &AtomicBool::new(true));
    assert!(matches!(cancelled, Err(StudyError::Cancelled)));
}

#[test]
fn a_corrupt_slice_is_skipped_and_listed() {
    let c = common::corpus();
    let tmp = tempfile::tempdir().expect("tempdir");
    let source = test_files(&c).join("dicomdirtests/98892001/CT5N");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&source)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for f in &files {
        std::fs::copy(f, tmp.path().join(f.file_name().expect("name"))).expect("copy");
    }
    // Cut the pixel data of one slice short: its header still reads.
    let victim = tmp.path().join(files[2].file_name().expect("name"));
    let bytes = std::fs::read(&victim).expect("read");
    std::fs::write(&victim, &bytes[..bytes.len() - 100]).expect("write");
    let set = open(&[tmp.path().to_path_buf()]);
    let stack = &set.series().next().expect("series").stacks[0];
    assert_eq!(stack.slices.len(), 5);
    let volume = study::load_volume(stack, &no_progress, &AtomicBool::new(false)).expect("rest still loads");
    assert_eq!(volume.skipped.len(), 1);
    assert!(volume.skipped[0].path.ends_with(files[2].file_name().expect("name")));
}

fn stored_values(c: &common::Corpus, tmp: &Path) -> (Vec<f32>, dicom_object::DefaultDicomObject) {
    let mut obj = dicom_object::open_file(test_files(c).join("MR_small.dcm")).expect("opens");
    obj.remove_element(tags::RESCALE_SLOPE);
    obj.remove_element(tags::RESCALE_INTERCEPT);
    let plain = tmp.join("plain.dcm");
    obj.write_to_file(&plain).expect("write");
    (decode_all(&plain).expect("decodes").remove(0).values, obj)
}

/// Rescale elements stored with VR UN hold DS text: they must be read as text, not as bytes.
#[test]
fn rescale_stored_as_un_is_applied() {
    let c = common::corpus();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (stored, mut obj) = stored_values(&c, tmp.path());
    obj.put(DataElement::new(
        tags::RESCALE_SLOPE,
        VR::UN,
        PrimitiveValue::from(b"2.5 ".to_vec()),
    ));
    obj.put(DataElement::new(
        tags::RESCALE_INTERCEPT,
        VR::UN,
        PrimitiveValue::from(b"-10 ".to_vec()),
    ));
    let path = tmp.path().join("un.dcm");
    obj.write_to_file(&path).expect("write");
    let values = decode_all(&path).expect("decodes").remove(0).values;
    assert!(stored.iter().any(|&v| v != 0.0));
    for (v, s) in values.iter().zip(&stored) {
        assert_eq!(*v, s * 2.5 - 10.0);
    }
}

#[test]
fn modality_lut_sequence_is_applied_with_clamping() {
    let c = common::corpus();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (stored, mut obj) = stored_values(&c, tmp.path());
    let table: Vec<u16> = (0..256u16).map(|i| i * 3).collect();
    let (lo, hi) = stored
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(hi - lo > 300.0, "test needs a wide range of stored values");
    let first = (((lo + hi) / 2.0) as u16).saturating_sub(128);
    let mut item = dicom_object::InMemDicomObject::new_empty();
    item.put(DataElement::new(
        tags::LUT_DESCRIPTOR,
        VR::US,
        PrimitiveValue::U16([256u16, first, 16].into_iter().collect()),
    ));
    item.put(DataElement::new(
        tags::LUT_DATA,
        VR::OW,
        PrimitiveValue::U16(table.clone().into()),
    ));
    obj.put(DataElement::new(
        tags::MODALITY_LUT_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::from(vec![item]),
    ));
    let path = tmp.path().join("lut.dcm");
    obj.write_to_file(&path).expect("write");
    let values = decode_all(&path).expect("decodes").remove(0).values;
    for (v, s) in values.iter().zip(&stored) {
        let index = (*s as i64 - i64::from(first)).clamp(0, 255) as usize;
        assert_eq!(*v, f32::from(table[index]), "stored {s}");
    }
}
