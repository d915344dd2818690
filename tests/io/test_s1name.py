"""Sentinel-1 product and file names."""

from __future__ import annotations

from oilspill.io.s1name import parse_s1_product_id


def test_s1_product_name_is_parsed() -> None:
    p = parse_s1_product_id(
        "S1A_IW_GRDH_1SDV_20230105T053412_20230105T053437_046640_059711_2C5F.SAFE.zip"
    )
    assert p is not None
    assert (p["mission"], p["mode"], p["product_type"], p["resolution"]) == (
        "S1A",
        "IW",
        "GRD",
        "high",
    )
    assert p["polarisations"] == ["VV", "VH"]
    assert p["start"] == "2023-01-05T05:34:12Z" and p["absolute_orbit"] == 46640
    assert p["relative_orbit"] == 18


def test_s1_measurement_file_name_is_parsed() -> None:
    p = parse_s1_product_id("s1b-iw-grd-vh-20200101t000000-20200101t000025-019612-025080-002.tiff")
    assert p is not None and p["platform"] == "Sentinel-1B" and p["polarisations"] == ["VH"]


def test_other_names_are_not_s1() -> None:
    assert parse_s1_product_id("harbour_2023.png") is None
