#!/usr/bin/env python3
"""Writes, beside the sample study, the objects other tools leave in a study folder, to test
which series Focal analyses when none is named:
- seg/: a DICOM SEG by highdicom over the sample series, two segments (bright and dark
  tissue), so its frames (2 per slice) outnumber the sample's images;
- ct/: a greyscale copy of the sample series labelled CT, one slice more (a modality the brain
  model does not take);
- derived/: a greyscale copy labelled DERIVED\\SECONDARY (a reformat), two slices more;
- sc/: a colour secondary capture (a screenshot) by highdicom.
Every object is in the sample's study and frame of reference, with UIDs fixed by entropy.

usage: make_other_objects.py SAMPLE_DIR OUT_DIR
"""
import glob
import os
import sys

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid


def uid(*parts):
    return generate_uid(entropy_srcs=["focal-test-other-objects", *parts])


def copies(files, out, name, modality, image_type, number, extra):
    """The sample's slices (plus `extra` repeated at the end, shifted on) as another series."""
    os.makedirs(out, exist_ok=True)
    series_uid = uid(name)
    step = float(files[1].ImagePositionPatient[2]) - float(files[0].ImagePositionPatient[2])
    for n, src in enumerate(files + files[-extra:] if extra else files):
        ds = src.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = uid(name, str(n))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.Modality = modality
        ds.ImageType = image_type
        ds.SeriesNumber = number
        ds.SeriesDescription = f"{name} copy (test)"
        ds.InstanceNumber = n + 1
        position = [float(v) for v in files[0].ImagePositionPatient]
        position[2] += n * step
        ds.ImagePositionPatient = position
        ds.SliceLocation = position[2]
        ds.save_as(os.path.join(out, f"{name}{n:04d}.dcm"), enforce_file_format=True)


def main():
    sample, out = sys.argv[1], sys.argv[2]
    files = sorted((pydicom.dcmread(f) for f in glob.glob(os.path.join(sample, "*.dcm"))),
                   key=lambda d: float(d.ImagePositionPatient[2]))
    pixels = np.stack([f.pixel_array for f in files])
    bright = pixels > np.percentile(pixels[pixels > 0], 70)
    dark = (pixels > 0) & ~bright
    labels = np.zeros(pixels.shape, np.uint8)
    labels[bright] = 1
    labels[dark] = 2
    algorithm = hd.AlgorithmIdentificationSequence(
        name="threshold", version="1", family=codes.cid7162.ArtificialIntelligence)
    segments = [
        hd.seg.SegmentDescription(
            segment_number=k + 1, segment_label=label,
            segmented_property_category=codes.cid7150.Tissue,
            segmented_property_type=codes.cid7166.ConnectiveTissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm)
        for k, label in enumerate(["bright", "dark"])
    ]
    seg = hd.seg.Segmentation(
        source_images=files, pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=uid("seg"), series_number=90,
        sop_instance_uid=uid("seg", "1"), instance_number=1, manufacturer="Focal tests",
        manufacturer_model_name="threshold", software_versions="1", device_serial_number="1",
        omit_empty_frames=False)
    os.makedirs(os.path.join(out, "seg"), exist_ok=True)
    seg.save_as(os.path.join(out, "seg", "seg.dcm"))

    copies(files, os.path.join(out, "ct"), "CT", "CT", ["ORIGINAL", "PRIMARY", "AXIAL"], 91, 1)
    copies(files, os.path.join(out, "derived"), "reformat", "MR", ["DERIVED", "SECONDARY", "MPR"], 92, 2)

    middle = files[len(files) // 2]
    grey = middle.pixel_array.astype(np.float64)
    grey = (255 * grey / max(grey.max(), 1)).astype(np.uint8)
    rgb = np.stack([grey, grey, grey], axis=-1)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=middle, pixel_array=rgb,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8, coordinate_system=hd.CoordinateSystemNames.PATIENT, patient_orientation=("L", "P"),
        series_instance_uid=uid("sc"), sop_instance_uid=uid("sc", "1"), series_number=93,
        instance_number=1, manufacturer="Focal tests", series_description="screenshot (test)")
    os.makedirs(os.path.join(out, "sc"), exist_ok=True)
    sc.save_as(os.path.join(out, "sc", "sc.dcm"))


if __name__ == "__main__":
    main()
