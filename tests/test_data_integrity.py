"""Known data files are checked against their catalogue checksums once; bad or missing ones give one clear line."""
import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import shutil
import socket

import numpy as np
import pytest

import data
from data import checksum, paths, text, tfds_builder

SHARED = pathlib.Path(os.environ.get("MODZOO_DATA_DIR", "/nonexistent"))
needs_shared = pytest.mark.skipif(not (SHARED / "tinyshakespeare.txt").is_file(), reason="shared data not present")
GARBAGE = np.random.default_rng(0).integers(0, 256, 1024, dtype=np.uint8).tobytes()


@pytest.fixture
def digests(monkeypatch):
    """Counts the files data.checksum hashes (its one hashing function, wrapped)."""
    hashed = []
    real = checksum.file_digest

    def counting(path, algorithm="sha256"):
        hashed.append(pathlib.Path(path).name)
        return real(path, algorithm)

    monkeypatch.setattr(checksum, "file_digest", counting)
    return hashed


def one_line_error(error_type, call):
    with pytest.raises(error_type) as err:
        call()
    message = str(err.value)
    assert "\n" not in message
    return message


def nothing_prepared(cache):
    return not list(cache.rglob("dataset_info.json"))


@pytest.mark.parametrize("remote, load", [
    (paths.TINY_SHAKESPEARE, lambda d, c: data.text_dataset("tinyshakespeare", "train", 8, data_dir=d, cache_dir=c)),
    (paths.TINYSTORIES_SUBSET, lambda d, c: data.text_dataset("tinystories", "train", 8, data_dir=d, cache_dir=c)),
    (paths.CIFAR10_JPG, lambda d, c: data.image_dataset("cifar10", "train", data_dir=d, cache_dir=c)),
    (paths.CIFAR10_PYTHON, lambda d, c: data.image_dataset("cifar10", "train", data_dir=d, cache_dir=c)),
], ids=["tinyshakespeare", "tinystories", "cifar10-jpg", "cifar10-python"])
def test_garbage_in_place_of_a_known_file_is_refused(tmp_path, remote, load):
    (tmp_path / remote.filename).write_bytes(GARBAGE)
    message = one_line_error(data.ChecksumError, lambda: load(tmp_path, tmp_path / "cache"))
    algorithm, expected = remote.checksum
    actual = hashlib.new(algorithm, GARBAGE).hexdigest()
    assert f"{tmp_path / remote.filename} is not the expected file" in message
    assert f"{algorithm} expected {expected}, got {actual}" in message
    if remote.url:
        assert f"delete it so it is downloaded again, or download {remote.url} into {tmp_path} yourself" in message
    else:
        assert f"replace it with an intact copy of {remote.filename}" in message
    assert nothing_prepared(tmp_path / "cache")


@needs_shared
def test_truncated_tinyshakespeare_is_refused_before_anything_is_prepared(tmp_path):
    head = (SHARED / "tinyshakespeare.txt").read_bytes()[:500_000]
    (tmp_path / "tinyshakespeare.txt").write_bytes(head)
    load = functools.partial(data.text_dataset, "tinyshakespeare", "train", 64, data_dir=tmp_path,
                             cache_dir=tmp_path / "c")
    message = one_line_error(ValueError, load)  # ChecksumError is a ValueError: callers catching bad input see it
    assert f"sha256 expected {paths.TINY_SHAKESPEARE.sha256}, got {hashlib.sha256(head).hexdigest()}" in message
    assert nothing_prepared(tmp_path / "c")


@needs_shared
def test_a_good_copy_is_hashed_once_and_its_prepared_copy_records_the_checksum(tmp_path, digests):
    local = tmp_path / "tinyshakespeare.txt"
    cache = tmp_path / "cache"
    local.write_bytes(GARBAGE)
    with pytest.raises(data.ChecksumError):
        data.text_dataset("tinyshakespeare", "train", 64, data_dir=tmp_path, cache_dir=cache)
    shutil.copyfile(SHARED / "tinyshakespeare.txt", local)  # the fix the message gives: an intact copy
    train = data.text_dataset("tinyshakespeare", "train", 64, data_dir=tmp_path, cache_dir=cache)
    assert len(train.tokens) == 1_003_854 and digests == ["tinyshakespeare.txt"] * 2
    data.text_dataset("tinyshakespeare", "validation", 64, data_dir=tmp_path, cache_dir=cache)
    data.text_dataset("tinyshakespeare", "train", 64, data_dir=tmp_path, cache_dir=cache)
    assert len(digests) == 2  # later uses of the unchanged file trust the record
    root = tfds_builder.prepared_dir(local, tfds_builder.ModzooText, cache).parents[1]
    record = json.loads((root / paths.VERIFIED_RECORD).read_text())
    stat = local.stat()
    assert record == {"path": str(local), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                      "sha256": hashlib.sha256(local.read_bytes()).hexdigest()}
    os.utime(local, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: verified (and prepared) afresh
    data.text_dataset("tinyshakespeare", "validation", 64, data_dir=tmp_path, cache_dir=cache)
    assert len(digests) == 3


def test_a_users_own_file_is_not_checked(tmp_path, digests):
    own = tmp_path / "mine" / "tinyshakespeare.txt"  # a catalogue name, but given as a path: the user's file
    own.parent.mkdir()
    own.write_bytes(GARBAGE)
    ds = data.text_dataset(own, "train", 8, cache_dir=tmp_path / "cache")
    assert bytes(ds.tokens) == GARBAGE[:921] and digests == []


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/input.txt"  # nothing listens: connecting fails at once, as offline


def test_a_missing_file_offline_names_file_folder_and_fix(tmp_path, monkeypatch):
    offline = dataclasses.replace(paths.TINY_SHAKESPEARE, url=_closed_port_url())
    monkeypatch.setitem(text.CORPORA, "tinyshakespeare", offline)
    message = one_line_error(
        data.MissingDataError, lambda: data.text_dataset("tinyshakespeare", "train", 8, data_dir=tmp_path)
    )
    assert message.startswith(f"tinyshakespeare.txt not found in {tmp_path} and downloading {offline.url} failed")
    assert message.endswith(f"put tinyshakespeare.txt in {tmp_path}, or set $MODZOO_DATA_DIR (data_dir= in Python)"
                            " to a folder that has it")
    assert isinstance(data.MissingDataError("x"), FileNotFoundError) and list(tmp_path.iterdir()) == []


def test_pretrained_files_written_by_the_shared_writer_are_world_readable(tmp_path, monkeypatch):
    from zoo import pretrained

    monkeypatch.setattr(pretrained, "HERE", tmp_path)
    monkeypatch.setattr(pretrained, "CATALOG", tmp_path / "catalog.json")
    old = os.umask(0o022)
    try:
        path = pretrained.export({"w": np.arange(3.0)}, "t", model="gpt-tiny", overrides={}, config="c.py",
                                 command="modzoo train", metric={})
    finally:
        os.umask(old)
    for written in (path, tmp_path / "catalog.json"):
        assert written.stat().st_mode & 0o777 == 0o644, written
    assert pretrained.catalog()["t"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.json", "t.msgpack"]  # no temporary left


@pytest.mark.parametrize("bad", ["corrupt", "missing"])
def test_modzoo_train_reports_a_bad_data_file_in_one_line(tmp_path, monkeypatch, bad):
    from zoo import cli

    folder = tmp_path / "data"
    folder.mkdir()
    if bad == "corrupt":
        (folder / "tinystories_val_subset.txt").write_bytes(GARBAGE)
    monkeypatch.setenv("MODZOO_DATA_DIR", str(folder))
    monkeypatch.setenv("MODZOO_CACHE_DIR", str(tmp_path / "cache"))
    config = pathlib.Path(__file__).resolve().parents[1] / "configs" / "gpt_tinystories.py"
    with pytest.raises(SystemExit) as stop:
        cli.main(["train", "--config", f"{config}:test", "--workdir", str(tmp_path / "run")])
    message = str(stop.value.code)
    assert "\n" not in message
    if bad == "corrupt":
        assert message.startswith(f"modzoo train: {folder / 'tinystories_val_subset.txt'} is not the expected file")
    else:
        assert message.startswith(f"modzoo train: tinystories_val_subset.txt not found in {folder}")
