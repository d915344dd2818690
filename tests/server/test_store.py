"""The data folder: ids, atomic meta files, and what start-up keeps or deletes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oilspill.errors import DataDirInUse, NotFound
from oilspill.server.jobs import Item, ItemStatus, Job, JobStatus
from oilspill.server.store import JobStore, check_id, new_id, write_atomic


def test_ids_are_128_random_bits_in_hex() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize("bad", ["", "../etc", "A" * 32, "0" * 31, "0" * 33, "0" * 31 + "/"])
def test_malformed_ids_never_reach_a_path(bad: str) -> None:
    with pytest.raises(NotFound):
        check_id(bad)


def test_atomic_write_leaves_no_temp_file_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    write_atomic(path, b"one")
    write_atomic(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["meta.json"]


def test_meta_round_trips(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.prepare()
    item = Item(index=0, name="снимок.png", mask_name="masks/снимок.png", fmt="png")
    job = Job(id=new_id(), user_hash=new_id(), items=[item], skipped=["a.txt"])
    store.job_dir(job.id).mkdir()
    job.status = JobStatus.STARTED
    item.status = ItemStatus.DONE
    store.save(job)
    (loaded,) = store.load_all()
    assert loaded == job


def test_start_up_puts_aside_folders_without_a_readable_meta(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.prepare()
    broken = tmp_path / new_id()
    broken.mkdir()
    (broken / "meta.json").write_text("{half a fi")
    (tmp_path / ".uploads" / "partial.zip").write_bytes(b"PK")
    store.prepare()
    assert store.load_all() == []
    assert not broken.exists()
    (kept,) = (tmp_path / ".quarantine").iterdir()  # never deleted at start
    assert (kept / "meta.json").read_text() == "{half a fi"
    assert list((tmp_path / ".uploads").iterdir()) == []


def test_an_unreadable_meta_is_put_aside_not_deleted(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.prepare()
    job_dir = tmp_path / new_id()
    job_dir.mkdir()
    (job_dir / "meta.json").write_text('{"id": "x"}')  # KeyError on read
    assert store.load_all() == []
    assert len(list((tmp_path / ".quarantine").iterdir())) == 1


def test_a_second_store_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    first = JobStore(tmp_path)
    first.prepare()
    with pytest.raises(DataDirInUse, match=f"pid {os.getpid()}"):
        JobStore(tmp_path).prepare()
    first.release()
    JobStore(tmp_path).prepare()  # free again once the first lets go


def test_delete_renames_the_folder_away_first(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    store.prepare()
    job_id = new_id()
    (tmp_path / job_id / "out").mkdir(parents=True)
    store.delete(job_id)
    assert not (tmp_path / job_id).exists()
    store.delete(job_id)  # twice is fine


def test_metas_of_other_versions_are_read_or_left_alone(tmp_path: Path) -> None:
    import json

    store = JobStore(tmp_path)
    old = Job(id=new_id(), user_hash=new_id(), items=[Item(0, "a.png", "masks/a.png", "png")])
    meta = old.to_meta()
    meta["items"][0]["dropped_since"] = 1  # a field a later version removed
    del meta["items"][0]["seconds"]  # a field an older version did not write
    (tmp_path / old.id).mkdir()
    (tmp_path / old.id / "meta.json").write_text(json.dumps(meta))
    newer = Job(id=new_id(), user_hash=new_id(), items=[])
    (tmp_path / newer.id).mkdir()
    (tmp_path / newer.id / "meta.json").write_text(json.dumps({**newer.to_meta(), "version": 99}))
    (loaded,) = store.load_all()
    assert loaded.id == old.id and loaded.items[0].seconds == 0.0
    assert (tmp_path / newer.id / "meta.json").exists()  # not deleted, not quarantined
