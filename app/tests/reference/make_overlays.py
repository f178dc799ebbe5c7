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
- rtstruct/rtstruct.dcm: an RT Structure Set by pydicom (a sphere, a ring with a hole, and a
  contour with a NaN point); rtstruct-truth.nii.gz its ROIs rasterised by the same rule;
- sr/sr.dcm: a TID 1500 measurement report by highdicom (an ellipse's area and a line's
  length on the middle slice); ko/ko.dcm: a Key Object Selection of slices 11 and 21;
  gsps/gsps.dcm: a presentation state (a square and a text on the middle slice, window 40/80,
  rotation 90°);
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


def inside(polygon, xs, ys):
    """Even-odd rule: which points (xs, ys) lie inside the closed polygon."""
    result = np.zeros(xs.shape, bool)
    n = len(polygon)
    for k in range(n):
        (ax, ay), (bx, by) = polygon[k], polygon[(k + 1) % n]
        crosses = (ay > ys) != (by > ys)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + (ys - ay) / (by - ay) * (bx - ax)
        result ^= crosses & (xs < x_at)
    return result


def structure_set(files, out):
    """rtstruct/rtstruct.dcm (pydicom): a sphere of 30 mm radius, a ring (a disc with a hole,
    two contours per slice) and a contour with non-finite points, over the sample; the
    truth rasterised by the same rule (voxel centres inside, even-odd) beside it."""
    first = files[0]
    shape = (len(files), int(first.Rows), int(first.Columns))
    to_voxel = np.linalg.inv(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine(files))  # LPS mm -> voxel
    centre = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine(files) @ np.array([shape[2] / 2, shape[1] / 2, shape[0] / 2, 1.0])
    truth_labels = np.zeros(shape, np.uint8)
    jj, ii = np.mgrid[0:shape[1], 0:shape[2]]

    def contour(radius, z, n=48):
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)
        return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t), np.full(n, z)], axis=1)

    def rasterise(points, value, hole=False):
        v = (to_voxel @ np.c_[points, np.ones(len(points))].T).T[:, :3]
        k = int(round(v[:, 2].mean()))
        if not 0 <= k < shape[0]:
            return
        mask = inside(v[:, :2], ii.astype(float), jj.astype(float))
        plane = truth_labels[k]
        if hole:
            plane[mask & (plane == value)] = 0
        else:
            plane[mask] = value

    items = []
    step = abs(float(files[1].ImagePositionPatient[2]) - float(files[0].ImagePositionPatient[2]))
    sphere = []
    for k in range(shape[0]):
        z = float(files[k].ImagePositionPatient[2])
        dz = z - centre[2]
        if abs(dz) < 30:
            pts = contour(np.sqrt(30 ** 2 - dz ** 2), z)
            sphere.append(pts)
            rasterise(pts, 1)
    ring = []
    for k in range(shape[0]):
        z = float(files[k].ImagePositionPatient[2])
        if 40 <= z - centre[2] < 40 + 5 * step:
            outer, inner = contour(20, z), contour(10, z)
            ring += [outer, inner]
            rasterise(outer, 2)
            rasterise(inner, 2, hole=True)
    ds = pydicom.Dataset()
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = uid("rtstruct", "1")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
                    "StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, keyword, getattr(first, keyword, ""))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = uid("rtstruct")
    ds.SeriesNumber = 305
    ds.SeriesDescription = "structures (test)"
    ds.StructureSetLabel = "test"
    ds.StructureSetDate, ds.StructureSetTime = "20261206", "120000"
    ds.Manufacturer = "Focal tests"
    series_ref = pydicom.Dataset()
    series_ref.SeriesInstanceUID = first.SeriesInstanceUID
    series_ref.ContourImageSequence = [pydicom.Dataset() for _ in files]
    for item, f in zip(series_ref.ContourImageSequence, files):
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = f.SOPClassUID, f.SOPInstanceUID
    study_ref = pydicom.Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study_ref.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = [series_ref]
    frame = pydicom.Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = [study_ref]
    ds.ReferencedFrameOfReferenceSequence = [frame]
    rois, roi_contours, observations = [], [], []
    nan_contour = contour(15, float(files[shape[0] // 2].ImagePositionPatient[2]))
    for number, name, colour, contours in [(1, "sphere", [255, 0, 0], sphere), (2, "ring", [0, 255, 0], ring),
                                           (3, "broken", [0, 0, 255], [nan_contour])]:
        roi = pydicom.Dataset()
        roi.ROINumber, roi.ROIName, roi.ROIGenerationAlgorithm = number, name, "MANUAL"
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        rois.append(roi)
        rc = pydicom.Dataset()
        rc.ReferencedROINumber, rc.ROIDisplayColor = number, colour
        rc.ContourSequence = []
        for pts in contours:
            c = pydicom.Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(pts)
            values = [f"{v:.4f}" for v in pts.ravel()]
            if name == "broken":
                values[4] = "nan"
            c.ContourData = values
            rc.ContourSequence.append(c)
        roi_contours.append(rc)
        obs = pydicom.Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber, obs.RTROIInterpretedType, obs.ROIInterpreter = number, number, "ORGAN", ""
        observations.append(obs)
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = rois, roi_contours, observations
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    os.makedirs(os.path.join(out, "rtstruct"), exist_ok=True)
    ds.save_as(os.path.join(out, "rtstruct", "rtstruct.dcm"), enforce_file_format=True)
    truth(truth_labels, files, os.path.join(out, "rtstruct-truth.nii.gz"))
    return {"rtstruct_voxels": [int((truth_labels == k).sum()) for k in (1, 2)]}


def reports(files, out):
    """sr/sr.dcm (highdicom, TID 1500): an ellipse with its area and a line with its length
    on one slice; ko/ko.dcm: a Key Object Selection of two slices."""
    k = len(files) // 2
    image = files[k]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=uid("device")))
    source = hd.sr.SourceImageForRegion.from_source_image(image)
    ellipse = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.ELLIPSE,
                                graphic_data=np.array([[80.0, 100.0], [140.0, 100.0], [110.0, 85.0], [110.0, 115.0]]),
                                source_image=source)
    line = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                             graphic_data=np.array([[60.0, 150.0], [160.0, 150.0]]), source_image=source)
    groups = [
        hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=uid("sr", "ellipse"), identifier="lesion"),
            referenced_region=ellipse,
            measurements=[hd.sr.Measurement(name=codes.SCT.Area, value=706.9, unit=codes.UCUM.SquareMillimeter)]),
        hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=uid("sr", "line"), identifier="width"),
            referenced_region=line,
            measurements=[hd.sr.Measurement(name=codes.SCT.Length, value=100.0, unit=codes.UCUM.Millimeter)]),
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[image], content=report[0], series_number=306, series_instance_uid=uid("sr"),
        sop_instance_uid=uid("sr", "1"), instance_number=1, manufacturer="Focal tests",
        series_description="measurements (test)")
    save(sr, out, "sr", "sr.dcm")
    keys = [files[10], files[20]]
    ko = hd.ko.KeyObjectSelectionDocument(
        evidence=keys, content=hd.ko.KeyObjectSelection(
            document_title=codes.DCM.OfInterest, referenced_objects=keys,
            observer_person_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Reader^Test"))),
        series_instance_uid=uid("ko"), series_number=307, sop_instance_uid=uid("ko", "1"),
        instance_number=1, manufacturer="Focal tests")
    save(ko, out, "ko", "ko.dcm")

    layer = hd.pr.GraphicLayer(layer_name="FINDINGS", order=1, description="findings")
    square = np.array([[70.0, 70.0], [130.0, 70.0], [130.0, 130.0], [70.0, 130.0], [70.0, 70.0]])
    annotation = hd.pr.GraphicAnnotation(
        referenced_images=[image], graphic_layer=layer,
        graphic_objects=[hd.pr.GraphicObject(graphic_type=hd.pr.GraphicTypeValues.POLYLINE, graphic_data=square,
                                             units=hd.pr.AnnotationUnitsValues.PIXEL)],
        text_objects=[hd.pr.TextObject(text_value="look here", units=hd.pr.AnnotationUnitsValues.PIXEL,
                                       anchor_point=(100.0, 60.0))])
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[image], series_instance_uid=uid("gsps"), series_number=308,
        sop_instance_uid=uid("gsps", "1"), instance_number=1, manufacturer="Focal tests",
        manufacturer_model_name="tests", software_versions="1", device_serial_number="1",
        content_label="READING", graphic_layers=[layer], graphic_annotations=[annotation],
        voi_lut_transformations=[hd.pr.SoftcopyVOILUTTransformation(window_center=40.0, window_width=80.0)])
    gsps.ImageRotation = 90
    save(gsps, out, "gsps", "gsps.dcm")
    return {"sr_slice": k + 1, "ko_slices": [11, 21]}


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

    facts.update(structure_set(files, out))
    facts.update(reports(files, out))

    if len(sys.argv) > 3:
        oblique = series(sys.argv[3])
        _, oblique_labels = tissue(oblique)
        save(three_segments(oblique, oblique_labels, "oblique-seg", 304), out, "oblique-seg")
        truth(oblique_labels, oblique, os.path.join(out, "oblique-truth.nii.gz"))
        facts["oblique_voxels"] = [int((oblique_labels == k).sum()) for k in (1, 2, 3)]
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
