"""Dithered views of one gwcs, for the unit tests of footprints and skymatch."""

import copy

import gwcs
import numpy as np
from astropy.modeling.models import RotationSequence3D, Shift


def moved_wcs(base, move_pix, roll_deg, origin, size):
    """``base`` with its pointing moved by about ``move_pix`` NIRCam pixels and rolled,
    seen through the ``size`` x ``size`` subarray whose first pixel is detector pixel ``origin``."""
    wcs = copy.deepcopy(base)
    to_sky = wcs.pipeline[2].transform
    rotation = next(to_sky[i] for i in range(to_sky.n_submodels)
                    if isinstance(to_sky[i], RotationSequence3D))
    angles = rotation.angles.value.copy()  # (v2, -v3, roll, dec, -ra) degrees
    step_deg = 0.031 / 3600.0
    angles[2] += roll_deg
    angles[3] += move_pix[1] * step_deg
    angles[4] -= move_pix[0] * step_deg / np.cos(np.deg2rad(angles[3]))
    rotation.angles = angles
    steps = [(step.frame, step.transform) for step in wcs.pipeline]
    if origin != (0, 0):
        steps[0] = (steps[0][0], (Shift(origin[0]) & Shift(origin[1])) | steps[0][1])
    return gwcs.WCS(steps)
