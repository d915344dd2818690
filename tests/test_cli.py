"""The command line, in-process: help, synth, segment."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import encode, sar_image

from oilspill.cli import main


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "segment", "synth"):
        assert command in out


def test_synth_writes_a_zip_of_scenes(tmp_path: Path) -> None:
    out = tmp_path / "scenes.zip"
    assert main(["synth", "-n", "2", "-o", str(out), "--size", "320x200", "--seed", "3"]) == 0
    names = zipfile.ZipFile(out).namelist()
    assert len([n for n in names if not n.startswith("truth/")]) == 2


def test_synth_writes_scenes_zip_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["synth", "-n", "1", "--size", "320x200", "--seed", "7"]) == 0
    (name,) = zipfile.ZipFile(tmp_path / "scenes.zip").namelist()
    assert "7" in name  # named by its seed, as --help says


def test_synth_geotiffs_segment_with_areas_and_geojson(tmp_path: Path) -> None:
    scenes = tmp_path / "geo.zip"
    args = ["synth", "-n", "1", "-o", str(scenes), "--size", "640x400", "--geotiff"]
    assert main([*args, "--form", "sigma0"]) == 0
    out = tmp_path / "out"
    assert main(["segment", str(scenes), "-o", str(out)]) == 0
    (mask,) = (out / "masks").glob("*.tif")
    assert mask.suffix == ".tif" and (out / "masks" / f"{mask.stem}.preview.png").exists()
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert rows[0]["oil_area_km2"] not in ("", "0.0")
    geojson = json.loads((out / "slicks.geojson").read_text())
    lon, lat = geojson["features"][0]["geometry"]["coordinates"][0][0]
    assert -10 < lon < 15 and 45 < lat < 60  # the generator puts scenes in the North Sea


def test_segment_writes_the_same_outputs_as_the_service(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.png").write_bytes(encode(sar_image(0, (480, 360))))
    (inputs / "b.jpg").write_bytes(encode(sar_image(1, (480, 360)), ".jpg"))
    (inputs / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert main(["segment", str(inputs), "-o", str(out), "--workers", "2"]) == 0
    assert {p.name for p in out.iterdir()} >= {"a.png", "b.jpg", "masks", "summary.csv"}
    assert (out / "masks" / "a.png").is_file()
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert {r["name"]: r["status"] for r in rows} == {
        "a.png": "done", "b.jpg": "done", "notes.txt": "skipped",
    }  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["images"][0]["slicks"]
    assert (inputs / "a.png").is_file()  # inputs are never deleted
    # The job's work folder lived in the output folder (its results were moved out): gone.
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_segment_a_missing_input_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["segment", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_segment_of_files_that_are_no_images_says_so_of_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    assert main(["segment", str(notes), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "the files given hold no readable images" in err and "notes.txt" in err


def test_segment_prints_no_log_lines_and_a_summary_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenes = tmp_path / "s.zip"
    assert main(["synth", "-n", "2", "-o", str(scenes), "--size", "320x200"]) == 0
    capsys.readouterr()
    assert main(["segment", str(scenes), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "service ready" not in captured.err and " INFO " not in captured.err
    lines = captured.out.splitlines()
    assert lines[0].split() == ["image", "slicks", "oil", "note"]
    assert len(lines) == 4 and "2 of 2 images segmented" in lines[-1]


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m oilspill ARGS` as a user runs it (`cli.run`), its output piped."""
    return subprocess.run(
        [sys.executable, "-m", "oilspill", *args], capture_output=True, text=True, timeout=120
    )


def test_the_command_exits_with_mains_code_after_all_is_written(tmp_path: Path) -> None:
    # segment and synth skip the interpreter's teardown (os._exit): their piped output must
    # still be flushed, every result on disk, and the code main's.
    scenes = tmp_path / "s.zip"
    assert _command("synth", "-n", "2", "-o", str(scenes), "--size", "320x200").returncode == 0
    done = _command("segment", str(scenes), "-o", str(tmp_path / "out"), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("2 of 2 images segmented")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["images"]
    assert len(list((tmp_path / "out" / "masks").glob("*.png"))) == 4  # 2 masks, 2 previews
    assert not list((tmp_path / "out").glob(".oilspill-work-*"))
    missing = _command("segment", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert _command("settings").stdout.startswith("|")
