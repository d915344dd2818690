"""Sentinel-1 product and measurement-file names: mission, mode, times, orbit, polarisations."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_S1_SAFE = re.compile(
    r"(?P<mission>S1[A-D])_(?P<mode>IW|EW|WV|S[1-6]|EN|N[1-6]|RF)_"
    r"(?P<type>RAW|SLC|GRD|OCN|ETA)(?P<res>[FHM_])_"
    r"(?P<level>[012])(?P<cls>[SAN])(?P<pol>SH|SV|DH|DV|HH|VV|HV|VH)_"
    r"(?P<start>\d{8}T\d{6})_(?P<stop>\d{8}T\d{6})_"
    r"(?P<orbit>\d{6})_(?P<take>[0-9A-F]{6})_(?P<uid>[0-9A-F]{4})",
    re.IGNORECASE,
)
_S1_FILE = re.compile(
    r"(?P<mission>s1[a-d])-(?P<swath>iw[1-3]?|ew[1-5]?|wv[12]|s[1-6])-"
    r"(?P<type>raw|slc|grd|ocn)-(?P<pol>hh|vv|hv|vh)-"
    r"(?P<start>\d{8}t\d{6})-(?P<stop>\d{8}t\d{6})-"
    r"(?P<orbit>\d{6})-(?P<take>[0-9a-f]{6})-(?P<image>\d{3})",
    re.IGNORECASE,
)
_POLS = {"SH": ["HH"], "SV": ["VV"], "DH": ["HH", "HV"], "DV": ["VV", "VH"]}
_RES = {"F": "full", "H": "high", "M": "medium", "_": None}
_CLASSES = {"S": "standard", "A": "annotation", "N": "noise"}
_ORBIT_OFFSET = {"S1A": 73, "S1B": 27}  # relative = (absolute - offset) % 175 + 1


def parse_s1_product_id(name: str) -> dict[str, Any] | None:
    """Fields of a Sentinel-1 product or measurement-file name, or None if it is not one."""
    m = _S1_SAFE.search(name)
    if m:
        mission = m["mission"].upper()
        pol = m["pol"].upper()
        out: dict[str, Any] = {
            "product_id": m.group(0).upper(),
            "mission": mission,
            "platform": f"Sentinel-1{mission[-1]}",
            "mode": m["mode"].upper(),
            "product_type": m["type"].upper(),
            "resolution": _RES.get(m["res"].upper()),
            "processing_level": int(m["level"]),
            "product_class": _CLASSES.get(m["cls"].upper()),
            "polarisations": _POLS.get(pol, [pol]),
            "unique_id": m["uid"].upper(),
        }
    else:
        m = _S1_FILE.search(name)
        if not m:
            return None
        mission = m["mission"].upper()
        out = {
            "product_id": None,
            "mission": mission,
            "platform": f"Sentinel-1{mission[-1]}",
            "mode": m["swath"].upper()[:2],
            "swath": m["swath"].upper(),
            "product_type": m["type"].upper(),
            "polarisations": [m["pol"].upper()],
            "image_number": int(m["image"]),
        }
    try:
        out["start"] = datetime.strptime(m["start"].upper(), "%Y%m%dT%H%M%S").isoformat() + "Z"
        out["stop"] = datetime.strptime(m["stop"].upper(), "%Y%m%dT%H%M%S").isoformat() + "Z"
    except ValueError:
        return None
    orbit = int(m["orbit"])
    out["absolute_orbit"] = orbit
    off = _ORBIT_OFFSET.get(mission)
    out["relative_orbit"] = (orbit - off) % 175 + 1 if off is not None else None
    out["datatake_id"] = m["take"].upper()
    return out
