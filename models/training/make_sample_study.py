#!/usr/bin/env python3
"""Write the bundled sample study: a real whole-head T1 MR (Colin27, from Debian's
mricron-data) as a DICOM MR series with correct patient geometry.

Colin27 is kept out of the model's training data (it is the held-out subject), so the sample
shows the model on a scan it has never seen. The identifiers are made up but realistic, so
privacy tests have known values to look for.

usage: make_sample_study.py CH2_NIFTI OUT_DIR [--step 2] [--thick] [--scale 1]
                            [--series-number 3 --description TEXT]
(--thick and --scale are for the held-out evaluation's thick-slice and template series;
--series-number and --description make a further series of the same study and frame of
reference, e.g. the key-region check's T2-like series)
"""
import argparse
import datetime
import os

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid, MRImageStorage

ROOT = "1.2.826.0.1.3680043.10.1502."  # prefix for Focal's sample UIDs (deterministic below)


def uid(name):
    return generate_uid(prefix=ROOT, entropy_srcs=["focal-sample", name])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nifti")
    ap.add_argument("out")
    ap.add_argument("--step", type=int, default=2, help="keep every n-th axial slice")
    ap.add_argument("--thick", action="store_true",
                    help="each kept slice is the mean of the `step` slices it stands for (thick slices)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply values (templates stored as small floats)")
    ap.add_argument("--series-number", type=int, default=3, help="another number: another series of the study")
    ap.add_argument("--description", default="T1 3D (Colin27 average), axial")
    ap.add_argument("--contrast", action="store_true",
                    help="the source scan was acquired with contrast: say so in ContrastBolusAgent")
    args = ap.parse_args()
    # The sample's own series keeps its UIDs; another series number gets its own.
    tag = "" if args.series_number == 3 else f"-{args.series_number}"

    img = nib.as_closest_canonical(nib.load(args.nifti))  # RAS+
    vol = np.asarray(img.get_fdata(), dtype=np.float64) * args.scale
    affine = img.affine
    zooms = img.header.get_zooms()[:3]
    # Keep the slices that hold the head (some signal), every `step` mm.
    signal = vol.reshape(-1, vol.shape[2]).max(axis=0) > 10
    ks = np.nonzero(signal)[0]
    ks = list(range(ks.min(), ks.max() + 1, args.step))

    study_uid, series_uid, frame_uid = uid("study"), uid("series" + tag), uid("frame")
    os.makedirs(args.out, exist_ok=True)
    for n, k in enumerate(ks):
        # DICOM axial: columns run to patient left (+x LPS), rows to posterior (+y LPS).
        # In RAS voxel space those are decreasing i and decreasing j.
        plane = vol[::-1, ::-1, k:k + args.step].mean(axis=2).T if args.thick else vol[::-1, ::-1, k].T
        centre = k + (args.step - 1) / 2 if args.thick else k  # a thick slice sits mid-way
        corner_vox = np.array([vol.shape[0] - 1, vol.shape[1] - 1, centre, 1.0])
        ras = affine @ corner_vox
        lps = [-ras[0], -ras[1], ras[2]]
        pixels = np.clip(np.round(plane), 0, 65535).astype(np.uint16)

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = uid(f"image{n}{tag}")
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["DERIVED", "PRIMARY", "AVERAGE"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "19980101"
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
        ds.AccessionNumber = "FOCALACC0001"
        ds.Modality = "MR"
        ds.Manufacturer = "Philips (Colin27 average of 27 scans)"
        ds.InstitutionName = "Focal Sample Institution"
        ds.ReferringPhysicianName = "Referrer^Sample"
        ds.StudyDescription = "Brain MRI (sample)"
        ds.SeriesDescription = args.description
        ds.PatientName = "Sample^Colin"
        ds.PatientID = "FOCAL-SAMPLE-0001"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "M"
        ds.BodyPartExamined = "HEAD"
        ds.ScanningSequence = "GR"
        ds.SequenceVariant = "SP"
        ds.MRAcquisitionType = "3D"
        ds.MagneticFieldStrength = "1.5"
        ds.SliceThickness = f"{zooms[2] * (args.step if args.thick else 1):.3f}"
        ds.SpacingBetweenSlices = f"{zooms[2] * args.step:.3f}"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyID = "1"
        ds.SeriesNumber = args.series_number
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in lps]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{lps[2]:.4f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelSpacing = [f"{zooms[1]:.4f}", f"{zooms[0]:.4f}"]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.RescaleType = "US"
        ds.WindowCenter = "70"
        ds.WindowWidth = "140"
        ds.PixelData = pixels.tobytes()
        if args.contrast:
            ds.ContrastBolusAgent = "CONTRAST (agent not recorded in the source)"
        # Shuffled-looking names, as PACS exports have: order must come from geometry.
        name = f"IM{(n * 7919) % 10007:05d}.dcm"
        ds.save_as(os.path.join(args.out, name), enforce_file_format=True)
    print(f"wrote {len(ks)} slices of {pixels.shape[1]}x{pixels.shape[0]} to {args.out}")


if __name__ == "__main__":
    main()
