#!/usr/bin/env python3
"""Writes, over the sample series (and an oblique copy, if given), the objects other tools
leave over a series, with the truth Focal must find in them:
- seg3/seg.dcm: a BINARY SEG by highdicom, three segments (bright, middle, dark tissue by
  intensity) with CIELab display colours, empty frames left out; seg3-truth.nii.gz the same
  labels on the sample's grid by nibabel (placed from the DICOM geometry here, independently);
- fractional/seg.dcm: a FRACTIONAL SEG of one segment (a smooth "probability"), its frames
  then shuffled in the file (functional groups and pixels together), so that only the plane
  positions can place them; fractional-truth.nii.gz where the probability is at least 0.5;
- pmap/pmap.dcm: a float Parametric Map (intensity / 1000, unit "{ratio}") with its range;
- bad input: overlap/ (two segments sharing voxels), many/ (10,000 listed segments),
  lying/ (NumberOfFrames larger than the pixel data), elsewhere/ (another frame of
  reference), outside/ (a third of the frames moved 1 m away);
- with OBLIQUE_DIR: oblique-seg/seg.dcm over that series and oblique-truth.nii.gz.
Prints one JSON line of the counts and ranges the objects hold.

usage: make_overlays.py SAMPLE_DIR OUT_DIR [OBLIQUE_DIR]
"""
import copy
import glob
import json
import os
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid


def uid(*parts):
    return generate_uid(entropy_srcs=["focal-test-overlays", *parts])


def series(folder):
    files = [pydicom.dcmread(f) for f in glob.glob(os.path.join(folder, "*.dcm"))]
    first = files[0]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    files.sort(key=lambda d: float(np.dot(normal, [float(v) for v in d.ImagePositionPatient])))
    return files


def affine(files):
    """Voxel (column, row, slice) to RAS mm, from the DICOM geometry."""
    first, second = files[0], files[1]
    iop = np.array([float(v) for v in first.ImageOrientationPatient])
    ps = [float(v) for v in first.PixelSpacing]  # between rows, between columns
    p0 = np.array([float(v) for v in first.ImagePositionPatient])
    p1 = np.array([float(v) for v in second.ImagePositionPatient])
    m = np.eye(4)
    m[:3, 0] = iop[:3] * ps[1]
    m[:3, 1] = iop[3:] * ps[0]
    m[:3, 2] = p1 - p0
    m[:3, 3] = p0
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ m


def truth(labels, files, path):
    """labels[k, j, i] as a NIfTI image data[i, j, k]."""
    nib.save(nib.Nifti1Image(np.transpose(labels, (2, 1, 0)).astype(np.int16), affine(files)), path)


def description(number, label, colour=None):
    algorithm = hd.AlgorithmIdentificationSequence(
        name="threshold", version="1", family=codes.cid7162.ArtificialIntelligence)
    return hd.seg.SegmentDescription(
        segment_number=number, segment_label=label,
        segmented_property_category=codes.cid7150.Tissue,
        segmented_property_type=codes.cid7166.ConnectiveTissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor(*colour) if colour else None)


def segmentation(files, pixels, kind, descriptions, name, number):
    return hd.seg.Segmentation(
        source_images=files, pixel_array=pixels, segmentation_type=kind,
        segment_descriptions=descriptions, series_instance_uid=uid(name), series_number=number,
        sop_instance_uid=uid(name, "1"), instance_number=1, manufacturer="Focal tests",
        manufacturer_model_name="threshold", software_versions="1", device_serial_number="1",
        series_description=f"{name} (test)", omit_empty_frames=True)


def save(ds, out, folder, name="seg.dcm"):
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    path = os.path.join(out, folder, name)
    ds.save_as(path)
    return path


def tissue(files):
    pixels = np.stack([f.pixel_array for f in files]).astype(np.float64)
    inside = pixels[pixels > 0]
    lo, hi = np.percentile(inside, 40), np.percentile(inside, 75)
    labels = np.zeros(pixels.shape, np.uint8)
    labels[(pixels > 0) & (pixels <= lo)] = 3
    labels[(pixels > lo) & (pixels <= hi)] = 2
    labels[pixels > hi] = 1
    return pixels, labels


def three_segments(files, labels, name, number):
    # Red, green and blue in CIELab (D65).
    colours = [(53.24, 80.09, 67.20), (87.73, -86.18, 83.18), (32.30, 79.19, -107.86)]
    stacked = np.stack([labels == k for k in (1, 2, 3)], axis=-1).astype(np.uint8)
    return segmentation(files, stacked, hd.seg.SegmentationTypeValues.BINARY,
                        [description(k + 1, n, colours[k]) for k, n in enumerate(["bright", "middle", "dark"])],
                        name, number)


def shuffle_frames(ds, seed):
    """The frames of an 8-bit multi-frame object in another order, groups with their pixels."""
    frames = int(ds.NumberOfFrames)
    size = int(ds.Rows) * int(ds.Columns)
    order = np.random.default_rng(seed).permutation(frames)
    data = np.frombuffer(ds.PixelData, np.uint8)[: frames * size].reshape(frames, size)
    ds.PixelData = data[order].tobytes()
    groups = list(ds.PerFrameFunctionalGroupsSequence)
    ds.PerFrameFunctionalGroupsSequence = [groups[i] for i in order]
    for d in ("DimensionIndexSequence",):
        if d in ds:
            del ds[d]
    return ds


def main():
    sample, out = sys.argv[1], sys.argv[2]
    files = series(sample)
    pixels, labels = tissue(files)
    facts = {}

    seg3 = three_segments(files, labels, "seg3", 300)
    save(seg3, out, "seg3")
    truth(labels, files, os.path.join(out, "seg3-truth.nii.gz"))
    facts["seg3_voxels"] = [int((labels == k).sum()) for k in (1, 2, 3)]

    # A smooth map: intensity scaled to 0..1, as a model's probability might look.
    probability = np.clip(pixels / np.percentile(pixels[pixels > 0], 90), 0, 1)
    fractional = segmentation(files, probability.astype(np.float32), hd.seg.SegmentationTypeValues.FRACTIONAL,
                              [description(1, "likely tissue")], "fractional", 301)
    shuffle_frames(fractional, 7)
    save(fractional, out, "fractional")
    # highdicom stores round(p * 255); Focal draws stored values at least half the maximum.
    truth((np.round(probability * 255) >= 127.5).astype(np.uint8), files, os.path.join(out, "fractional-truth.nii.gz"))

    values = (pixels / 1000.0).astype(np.float32)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="ratio", lut_explanation="Intensity ratio",
        unit=codes.UCUM.NoUnits if hasattr(codes.UCUM, "NoUnits") else hd.sr.CodedConcept("{ratio}", "UCUM", "ratio"),
        value_range=(float(values.min()), float(values.max())), slope=1, intercept=0)
    pmap = hd.pm.ParametricMap(
        source_images=files, pixel_array=values, series_instance_uid=uid("pmap"), series_number=302,
        sop_instance_uid=uid("pmap", "1"), instance_number=1, manufacturer="Focal tests",
        manufacturer_model_name="ratio", software_versions="1", device_serial_number="1",
        contains_recognizable_visual_features=False, real_world_value_mappings=[mapping],
        window_center=float(values.mean()), window_width=float(values.max() - values.min()),
        series_description="intensity ratio (test)")
    save(pmap, out, "pmap", "pmap.dcm")
    facts["pmap_range"] = [float(values.min()), float(values.max())]

    # Bad input.
    both = np.stack([labels == 1, (labels == 1) | (labels == 2)], axis=-1).astype(np.uint8)
    overlap = segmentation(files, both, hd.seg.SegmentationTypeValues.BINARY,
                           [description(1, "bright"), description(2, "bright and middle")], "overlap", 303)
    save(overlap, out, "overlap")
    facts["overlap_voxels"] = int((labels == 1).sum())

    many = copy.deepcopy(seg3)
    template = many.SegmentSequence[0]
    for n in range(4, 10001):
        item = copy.deepcopy(template)
        item.SegmentNumber = n
        item.SegmentLabel = f"segment {n}"
        many.SegmentSequence.append(item)
    many.SeriesInstanceUID, many.SOPInstanceUID = uid("many"), uid("many", "1")
    many.file_meta.MediaStorageSOPInstanceUID = many.SOPInstanceUID
    save(many, out, "many")

    lying = copy.deepcopy(seg3)
    lying.NumberOfFrames = int(seg3.NumberOfFrames) * 1000
    lying.SeriesInstanceUID, lying.SOPInstanceUID = uid("lying"), uid("lying", "1")
    lying.file_meta.MediaStorageSOPInstanceUID = lying.SOPInstanceUID
    save(lying, out, "lying")
    facts["lying_frames"] = int(lying.NumberOfFrames)

    elsewhere = copy.deepcopy(seg3)
    elsewhere.FrameOfReferenceUID = uid("another frame of reference")
    elsewhere.SeriesInstanceUID, elsewhere.SOPInstanceUID = uid("elsewhere"), uid("elsewhere", "1")
    elsewhere.file_meta.MediaStorageSOPInstanceUID = elsewhere.SOPInstanceUID
    save(elsewhere, out, "elsewhere")

    outside = copy.deepcopy(seg3)
    moved = 0
    for i, group in enumerate(outside.PerFrameFunctionalGroupsSequence):
        if i % 3 == 0:
            # A new item: highdicom shares one position item among the frames of a plane.
            p = [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient]
            position = pydicom.Dataset()
            position.ImagePositionPatient = [p[0], p[1], p[2] + 1000.0]
            group.PlanePositionSequence = [position]
            moved += 1
    outside.SeriesInstanceUID, outside.SOPInstanceUID = uid("outside"), uid("outside", "1")
    outside.file_meta.MediaStorageSOPInstanceUID = outside.SOPInstanceUID
    save(outside, out, "outside")
    facts["outside_frames"] = moved

    if len(sys.argv) > 3:
        oblique = series(sys.argv[3])
        _, oblique_labels = tissue(oblique)
        save(three_segments(oblique, oblique_labels, "oblique-seg", 304), out, "oblique-seg")
        truth(oblique_labels, oblique, os.path.join(out, "oblique-truth.nii.gz"))
        facts["oblique_voxels"] = [int((oblique_labels == k).sum()) for k in (1, 2, 3)]
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
