"""`oilspill.sar.detect` mapped over a folder of scenes by dask.distributed (README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest

from oilspill import sar
from oilspill.io import geojson, images

distributed = pytest.importorskip("dask.distributed")


def test_dask_maps_detect_over_scenes_into_one_geojson(tmp_path: Path) -> None:
    for seed in range(3):
        cv2.imwrite(str(tmp_path / f"scene_{seed}.png"), sar.synth.make_scene(seed).image)

    def oil_slicks(path: Path) -> tuple[str, Any, list[dict[str, Any]]]:
        raster = images.read(path)
        found = sar.detect(raster.pixels, georef=raster.georef, pixel_size_m=10.0)
        oil = [s.to_dict() for s in found.slicks if s.cls == sar.Cls.OIL]
        return path.name, raster.georef, oil

    paths = sorted(tmp_path.glob("*.png"))
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as client:
        per_image = client.gather(client.map(oil_slicks, paths))
    collection = geojson.slicks_geojson(per_image)

    expected = [oil_slicks(p) for p in paths]  # the same, in this process
    assert [len(s) for _, _, s in per_image] == [len(s) for _, _, s in expected]
    assert sum(len(s) for _, _, s in expected) > 0
    assert len(collection["features"]) == sum(len(s) for _, _, s in expected)
    json.dumps(collection)  # plain data all the way
    assert {f["properties"]["image"] for f in collection["features"]} <= {p.name for p in paths}
