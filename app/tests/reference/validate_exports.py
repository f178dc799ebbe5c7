"""Third-party checks of Focal's exports (run by app/tests/exports.rs).

usage: validate_exports.py STUDY_DIR ANALYSIS_DIR EXPORT_DIR

- highdicom reads the SEG and rebuilds its label volume with its own geometry; each of its
  slices, placed by highdicom's affine, must equal Focal's label map at the source slice with
  that Image Position (read from the source files by pydicom).
- pydicom reads the Parametric Map; each frame, placed by its Plane Position, must equal
  Focal's attention map at that source slice (float32, exactly).
- Each Secondary Capture equals the matching key image embedded in report.pdf (pdfimages).
Prints one JSON line with what it checked; exits non-zero on any mismatch.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import highdicom as hd
import numpy as np
import pydicom


def read_nifti(path):
    raw = open(path, "rb").read()
    dims = np.frombuffer(raw[40:56], "<i2")
    nx, ny, nz = int(dims[1]), int(dims[2]), int(dims[3])
    code = int(np.frombuffer(raw[70:72], "<i2")[0])
    dtype = {2: "u1", 16: "<f4"}[code]
    offset = int(np.frombuffer(raw[108:112], "<f4")[0])
    return np.frombuffer(raw[offset:], dtype)[: nx * ny * nz].reshape(nz, ny, nx)


def source_positions(study):
    """Image Position (Patient) of each source slice, in Focal's slice order (along the normal)."""
    positions = []
    for path in sorted(glob.glob(os.path.join(study, "**", "*"), recursive=True)):
        if not os.path.isfile(path):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        positions.append((np.array(ds.ImageOrientationPatient, float), np.array(ds.ImagePositionPatient, float)))
    iop = positions[0][0]
    normal = np.cross(iop[:3], iop[3:])
    return sorted((p for _, p in positions), key=lambda p: float(np.dot(p, normal)))


def slice_at(positions, point, tol=1e-3):
    for k, p in enumerate(positions):
        if np.linalg.norm(p - point) < tol:
            return k
    raise AssertionError(f"no source slice at {point}")


def main():
    study, analysis, out = sys.argv[1:4]
    result = {}
    positions = source_positions(study)
    labels = read_nifti(os.path.join(analysis, "labels-reviewed.nii"))  if os.path.exists(
        os.path.join(analysis, "labels-reviewed.nii")) else read_nifti(os.path.join(analysis, "labels.nii"))
    attention = read_nifti(os.path.join(analysis, "attention.nii"))
    manifest = json.load(open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "models", "brain-tissue.json")))

    # SEG through highdicom.
    seg = hd.seg.segread(os.path.join(out, "segmentation.dcm"))
    assert str(seg.segmentation_type.value) == "BINARY"
    names = {int(n): seg.get_segment_description(n).segment_label for n in seg.segment_numbers}
    index_of = {l["name"]: l["index"] for l in manifest["labels"]}
    volume = seg.get_volume(combine_segments=False)
    checked = 0
    for s in range(volume.array.shape[0]):
        point = volume.affine @ np.array([s, 0, 0, 1.0])
        k = slice_at(positions, point[:3])
        for j, number in enumerate(seg.segment_numbers):
            want = labels[k] == index_of[names[int(number)]]
            got = volume.array[s, :, :, j] > 0
            assert np.array_equal(got, want), f"SEG segment {names[int(number)]} differs at source slice {k}"
            checked += 1
    # Slices highdicom did not return must hold none of the labels.
    returned = {slice_at(positions, (volume.affine @ np.array([s, 0, 0, 1.0]))[:3]) for s in range(volume.array.shape[0])}
    for k in set(range(len(positions))) - returned:
        assert not labels[k].any(), f"source slice {k} has labels but no SEG frame"
    result["seg_slices_checked"] = checked
    result["seg_segments"] = sorted(names.values())

    # Parametric Map through pydicom.
    pm = pydicom.dcmread(os.path.join(out, "attention-map.dcm"))
    frames = pm.pixel_array.astype(np.float32)
    for f, item in enumerate(pm.PerFrameFunctionalGroupsSequence):
        k = slice_at(positions, np.array(item.PlanePositionSequence[0].ImagePositionPatient, float))
        assert np.array_equal(frames[f], attention[k]), f"Parametric Map frame {f} differs from attention slice {k}"
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    result["pmap_frames"] = len(pm.PerFrameFunctionalGroupsSequence)
    result["pmap_units"] = mapping.MeasurementUnitsCodeSequence[0].CodeValue

    # Secondary Captures against the images inside the PDF.
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["pdfimages", os.path.join(out, "report.pdf"), os.path.join(tmp, "img")], check=True)
        pdf_images = sorted(glob.glob(os.path.join(tmp, "img-*.ppm")))
        captures = sorted(glob.glob(os.path.join(out, "key-image-*.dcm")))
        assert len(pdf_images) == len(captures) > 0, f"{len(pdf_images)} PDF images, {len(captures)} captures"
        for ppm, dcm in zip(pdf_images, captures):
            raw = open(ppm, "rb").read()
            parts = raw.split(b"\n", 3)
            w, h = map(int, parts[1].split())
            img = np.frombuffer(parts[3], np.uint8).reshape(h, w, 3)
            sc = pydicom.dcmread(dcm).pixel_array
            assert np.array_equal(img, sc), f"{os.path.basename(dcm)} differs from the PDF's key image"
        result["key_images_matched"] = len(captures)

    # Encapsulated PDF: the same bytes as report.pdf, in the study of the SEG.
    doc = pydicom.dcmread(os.path.join(out, "report-pdf.dcm"))
    pdf = open(os.path.join(out, "report.pdf"), "rb").read()
    assert doc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1"
    assert doc.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert int(doc.EncapsulatedDocumentLength) == len(pdf)
    assert bytes(doc.EncapsulatedDocument)[: len(pdf)] == pdf, "the encapsulated document is not report.pdf"
    assert doc.StudyInstanceUID == seg.StudyInstanceUID
    result["encapsulated_pdf_bytes"] = len(pdf)
    print(json.dumps(result))


main()
