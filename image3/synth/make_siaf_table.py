"""Regenerate ``siaf_apertures.json`` (read by :mod:`image3.synth.siaf`) from STScI's SIAF.

Usage::

    python -m image3.synth.make_siaf_table

Needs image3's dependencies and pysiaf (``pip install '.[siaf]'``), which nothing else in
image3 imports. Per DMS detector the table holds one aperture's pysiaf attributes
(same names) that map science pixels to V2V3 and back, its polynomials in the JWST layout
(``a[0,0] a[1,0] a[1,1] a[2,0] …``, coefficient of x^(i−j) y^j), and the pysiaf and PRD
versions they came from.
"""

import json

import pysiaf

from image3.synth.siaf import TABLE_FILE

#: DMS detector name → (instrument, SIAF aperture): the full frame of each imaging detector.
APERTURES = {
    **{f"NRC{m}{k}": ("NIRCam", f"NRC{m}{k}_FULL") for m in "AB" for k in range(1, 5)},
    "NRCALONG": ("NIRCam", "NRCA5_FULL"),
    "NRCBLONG": ("NIRCam", "NRCB5_FULL"),
    "MIRIMAGE": ("MIRI", "MIRIM_FULL"),
    "NIS": ("NIRISS", "NIS_CEN"),
}
SCALARS = ("XSciRef", "YSciRef", "XSciSize", "YSciSize", "V2Ref", "V3Ref", "V3IdlYAngle",
           "VIdlParity", "Sci2IdlDeg")
POLYNOMIALS = ("Sci2IdlX", "Sci2IdlY", "Idl2SciX", "Idl2SciY")


def aperture_row(aperture) -> dict:
    """The table's entry for one pysiaf aperture."""
    row = {"AperName": aperture.AperName}
    row.update({name: getattr(aperture, name) for name in SCALARS})
    coefficients = aperture.get_polynomial_coefficients()
    row.update({name: [float(c) for c in coefficients[name]] for name in POLYNOMIALS})
    return row


def siaf_table() -> dict:
    """The table: the versions and, by DMS detector, the rows of APERTURES."""
    instruments = {instrument: pysiaf.Siaf(instrument) for instrument, _ in APERTURES.values()}
    return {
        "pysiaf_version": pysiaf.__version__,
        "prd_version": pysiaf.JWST_PRD_VERSION,
        "apertures": {
            detector: aperture_row(instruments[instrument][name])
            for detector, (instrument, name) in APERTURES.items()
        },
    }


def main() -> None:
    TABLE_FILE.write_text(json.dumps(siaf_table(), indent=1) + "\n")
    print(f"wrote {TABLE_FILE} ({TABLE_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
