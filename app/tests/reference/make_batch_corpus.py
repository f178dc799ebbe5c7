#!/usr/bin/env python3
"""A small archive for `focal batch` and the Ray job, from the bundled sample study's real
files: N copies of the study, each under its own study, series and instance UIDs (as another
patient's study would be), one study whose every file is truncated (unreadable), and one with
two corrupt slices among good ones. A CSV lists every study folder (`path` column).
With SLICES, each study keeps only that many consecutive slices from the middle of the head
(a smaller archive of many studies, for the Ray job).

usage: make_batch_corpus.py SAMPLE_DIR OUT_DIR N [SLICES]
"""
import csv
import glob
import os
import sys

import pydicom
from pydicom.uid import generate_uid


def copy_study(files, out, tag):
    os.makedirs(out, exist_ok=True)
    study = generate_uid(entropy_srcs=["focal-batch-study", tag])
    series = generate_uid(entropy_srcs=["focal-batch-series", tag])
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["focal-batch-instance", tag, str(i)])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientID = f"FOCAL-BATCH-{tag}"
        ds.save_as(os.path.join(out, os.path.basename(f)))


def main():
    sample, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    files = sorted(glob.glob(os.path.join(sample, "*.dcm")))
    if len(sys.argv) > 4:
        keep = int(sys.argv[4])
        start = max(0, (len(files) - keep) // 2)
        files = files[start:start + keep]
    studies = []
    for k in range(n):
        d = os.path.join(out, f"study-{k:03d}")
        copy_study(files, d, str(k))
        studies.append(d)
    bad = os.path.join(out, "truncated")
    copy_study(files[:10], bad, "truncated")
    for f in glob.glob(os.path.join(bad, "*.dcm")):
        with open(f, "r+b") as fh:
            fh.truncate(100)
    studies.append(bad)
    partly = os.path.join(out, "two-corrupt-slices")
    copy_study(files, partly, "two-corrupt")
    for f in sorted(glob.glob(os.path.join(partly, "*.dcm")))[len(files) // 2:len(files) // 2 + 2]:
        size = os.path.getsize(f)
        with open(f, "r+b") as fh:  # pixel data cut short: the header still reads
            fh.truncate(size - 20000)
    studies.append(partly)
    # As a spreadsheet in a European locale saves "CSV UTF-8": a byte-order mark, `;` between
    # fields, CRLF line ends, quotes where a field holds the separator.
    with open(os.path.join(out, "studies.csv"), "w", newline="", encoding="utf-8-sig") as fh:
        w = csv.writer(fh, delimiter=";")
        w.writerow(["note", "path"])
        for n, s in enumerate(studies):
            w.writerow([f"study {n + 1}; from the archive", os.path.relpath(s, out)])


if __name__ == "__main__":
    main()
