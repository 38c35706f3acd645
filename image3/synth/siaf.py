"""Real JWST distortions: 0-based science pixels → telescope V2V3 from STScI's SIAF.

The Science Instrument Aperture File gives, per aperture, polynomials from science pixels to
the ideal frame and the ideal frame's placement in V2V3. ``siaf_apertures.json`` holds them
for the full frame of each imaging detector (keyed by DMS detector name: NRCA1-4, NRCB1-4,
NRCALONG and NRCBLONG for NRCA5_FULL and NRCB5_FULL, MIRIMAGE for MIRIM_FULL, NIS for
NIS_CEN), in pysiaf's attribute names, with the pysiaf and PRD versions it was made from
(``python -m image3.synth.make_siaf_table``). Nothing here needs pysiaf.

Conventions (JWST-STScI-001550, as pysiaf's ``sci_to_tel``; checked against it to 1e-13"):

- Pixels: a full-frame aperture's science frame is the DMS frame of the detector's files.
  SIAF numbers pixel centres from 1, so ``x_sci = x + 1`` for a 0-based array column x (the
  first pixel's centre at 0), likewise y; the reference point is (XSciRef, YSciRef).
- Science → ideal [arcsec]: with dx = x_sci − XSciRef, dy = y_sci − YSciRef,
  ``X_idl = Σ_{i=1..deg} Σ_{j=0..i} Sci2IdlX[i,j] dx^(i−j) dy^j`` and Y_idl from Sci2IdlY; the
  table lists coefficients in the JWST layout a[0,0] a[1,0] a[1,1] a[2,0] … (deg = Sci2IdlDeg).
- Ideal → V2V3 [arcsec], the planar approximation jwst's gwcs also uses, θ = V3IdlYAngle
  [deg] (from +V3 to the ideal Y axis) and p = VIdlParity:
  ``V2 = V2Ref + p X_idl cos θ + Y_idl sin θ``, ``V3 = V3Ref − p X_idl sin θ + Y_idl cos θ``.

The SIAF's own inverse polynomials (Idl2SciX/Y, kept in the table) return the pixels only to
6e-4 (NRCA1) - 0.14 (NRCA3) pixel, 6e-3 for NRCB1, so the inverse attached here is a
polynomial fitted to the forward transform instead: round trip within 1e-7 pixel for NRCB1
and 4e-4 for MIRIMAGE (the worst) over the frame plus INVERSE_MARGIN_PX.
"""

import json
from functools import cache
from pathlib import Path

import numpy as np
from astropy.modeling import Model, fitting, models

TABLE_FILE = Path(__file__).with_name("siaf_apertures.json")
INVERSE_MARGIN_PX = 150  # the fitted inverse holds this far outside the detector
INVERSE_DEGREE = 9  # 6 leaves MIRIMAGE 5e-3 pixel off, NIS and the LW detectors ~3e-4


@cache
def table() -> dict:
    """The whole table: ``pysiaf_version``, ``prd_version`` and ``apertures`` by detector."""
    return json.loads(TABLE_FILE.read_text())


def aperture(detector: str) -> dict:
    """The SIAF entry of a DMS detector (``AperName``, ``V2Ref`` [arcsec], … as in pysiaf)."""
    return table()["apertures"][detector]


def polynomial(coefficients, degree: int) -> models.Polynomial2D:
    """A SIAF polynomial, coefficients in the JWST layout, as an astropy model of (dx, dy)."""
    powers = [(i - j, j) for i in range(degree + 1) for j in range(i + 1)]
    return models.Polynomial2D(
        degree, **{f"c{px}_{py}": c for (px, py), c in zip(powers, coefficients, strict=True)}
    )


@cache
def sci_to_v2v3(detector: str) -> Model:
    """0-based science pixel (x, y) → (V2, V3) [arcsec] of a detector's full frame.

    Its inverse is a fitted polynomial (see the module docstring). The model is
    cached and shared: compose it, do not modify it.
    """
    entry = aperture(detector)
    degree = entry["Sci2IdlDeg"]
    theta, parity = np.radians(entry["V3IdlYAngle"]), entry["VIdlParity"]
    cos, sin = np.cos(theta), np.sin(theta)
    forward = (
        (models.Shift(1 - entry["XSciRef"]) & models.Shift(1 - entry["YSciRef"]))
        | models.Mapping((0, 1, 0, 1))
        | (polynomial(entry["Sci2IdlX"], degree) & polynomial(entry["Sci2IdlY"], degree))
        | models.AffineTransformation2D(
            matrix=[[parity * cos, sin], [-parity * sin, cos]],
            translation=[entry["V2Ref"], entry["V3Ref"]],
        )
    )
    forward.inverse = _fitted_inverse(forward, entry["XSciSize"], entry["YSciSize"])
    return forward


def _fitted_inverse(forward: Model, x_size: int, y_size: int) -> Model:
    """Polynomial V2V3 → pixel inverse fitted over the frame plus INVERSE_MARGIN_PX."""
    x, y = np.meshgrid(
        np.linspace(-INVERSE_MARGIN_PX, x_size - 1 + INVERSE_MARGIN_PX, 60),
        np.linspace(-INVERSE_MARGIN_PX, y_size - 1 + INVERSE_MARGIN_PX, 60),
    )
    v2, v3 = forward(x, y)
    v2c, v3c = forward((x_size - 1) / 2, (y_size - 1) / 2)
    radius = float(np.hypot(v2 - v2c, v3 - v3c).max())
    normalise = (models.Shift(-v2c) | models.Scale(1 / radius)) & (
        models.Shift(-v3c) | models.Scale(1 / radius)
    )
    un, vn = normalise(v2, v3)
    fitter = fitting.LinearLSQFitter()
    poly_x = fitter(models.Polynomial2D(INVERSE_DEGREE), un, vn, x)
    poly_y = fitter(models.Polynomial2D(INVERSE_DEGREE), un, vn, y)
    return normalise | models.Mapping((0, 1, 0, 1)) | (poly_x & poly_y)
