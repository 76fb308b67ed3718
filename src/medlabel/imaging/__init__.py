"""Reading pixels and geometry: DICOM (series assembly inputs), NIfTI, photos, slides;
de-identification; rendering (window/level, encoding, tiles). Adapters around the domain."""
