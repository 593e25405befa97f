"""Byte-level text: split sizes, training and evaluation windows, determinism, checkpointing, sharding, errors."""
import hashlib
import itertools
import os
import pathlib

import numpy as np
import pytest

import data
from data import text

SHARED = pathlib.Path(os.environ.get("MODZOO_DATA_DIR", "/nonexistent"))
needs_shared = pytest.mark.skipif(not (SHARED / "tinyshakespeare.txt").is_file(), reason="shared data not present")


@pytest.fixture(autouse=True, scope="module")
def private_cache(tmp_path_factory):
    """Prepared copies go to a temporary cache folder, not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODZOO_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def corpus(tmp_path):
    """A 5,003-byte synthetic corpus (seeded random bytes) and its bytes."""
    raw = np.random.default_rng(123).integers(0, 256, 5003, dtype=np.uint8).tobytes()
    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    return path, raw


def take(iterator, n):
    return [next(iterator) for _ in range(n)]


@needs_shared
def test_tinyshakespeare_split_sizes_and_bytes():
    raw = (SHARED / "tinyshakespeare.txt").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == data.paths.TINY_SHAKESPEARE.sha256
    train = data.text_dataset("tinyshakespeare", "train", 64)
    val = data.text_dataset("tinyshakespeare", "validation", 64)
    assert (len(raw), len(train.tokens), len(val.tokens)) == (1_115_394, 1_003_854, 111_540)
    assert bytes(train.tokens[:20]) == raw[:20] and bytes(val.tokens) == raw[1_003_854:]
    assert len(set(raw)) == 65


@needs_shared
def test_tinystories_subset_uses_the_same_rule():
    n = (SHARED / "tinystories_val_subset.txt").stat().st_size
    train = data.text_dataset("tinystories", "train", 32)
    val = data.text_dataset("tinystories", "validation", 32)
    assert len(train.tokens) == int(n * 0.9) and len(train.tokens) + len(val.tokens) == n == 794_375


def test_train_windows_are_file_slices_disjoint_within_an_epoch(corpus):
    path, raw = corpus
    ds = data.text_dataset(path, "train", 15)  # 4,502 train bytes -> 281 windows of 16 per epoch
    assert ds.num_train_windows() == 4502 // 16 == 281
    it = data.make_train_iterator(ds, 8, seed=3, process_index=0, process_count=1)
    rows = np.concatenate([b["tokens"] for b in take(it, 35)])  # 280 windows: all inside epoch 0
    assert rows.dtype == np.int32 and rows.shape == (280, 16)
    starts = []
    for row in rows:
        found = raw.find(bytes(row.astype(np.uint8)))
        assert 0 <= found <= 4502 - 16
        starts.append(found)
    offsets = {s % 16 for s in starts}
    assert len(offsets) == 1 and offsets.pop() <= 4502 - 281 * 16  # one epoch offset, inside the slack
    assert len(set(starts)) == len(starts)  # no window twice in an epoch
    assert sorted(starts) != starts  # visited in a shuffled order


def test_same_seed_same_batches_different_seed_differs(corpus):
    path, _ = corpus
    ds = data.text_dataset(path, "train", 31)
    a = take(data.make_train_iterator(ds, 4, seed=7, process_count=1, process_index=0), 5)
    b = take(data.make_train_iterator(ds, 4, seed=7, process_count=1, process_index=0), 5)
    c = take(data.make_train_iterator(ds, 4, seed=8, process_count=1, process_index=0), 5)
    assert all(np.array_equal(x["tokens"], y["tokens"]) for x, y in zip(a, b))
    assert not all(np.array_equal(x["tokens"], y["tokens"]) for x, y in zip(a, c))


def test_restored_iterator_continues_exactly_across_an_epoch_boundary(corpus):
    path, _ = corpus
    ds = data.text_dataset(path, "train", 31)  # 140 windows per epoch; 40 batches of 4 cross into epoch 2
    make = lambda: data.make_train_iterator(ds, 4, seed=11, process_index=0, process_count=1)  # noqa: E731
    original = make()
    take(original, 13)
    state = data.iterator_state(original)
    assert isinstance(state, bytes)
    expected = take(original, 27)
    restored = data.restore_iterator(make(), state)
    got = take(restored, 27)
    assert all(np.array_equal(x["tokens"], y["tokens"]) for x, y in zip(expected, got))


def test_eval_windows_score_every_target_once(corpus):
    path, raw = corpus
    ds = data.text_dataset(path, "validation", 48)  # 501 bytes: 500 targets = 10 windows of 48 + a tail of 20
    assert ds.num_eval_windows() == 11
    batches = list(data.make_eval_batches(ds, 4, process_index=0, process_count=1))
    assert len(batches) == 3
    tokens = np.concatenate([b["tokens"] for b in batches])
    mask = np.concatenate([b["mask"] for b in batches])
    assert tokens.shape == (12, 49) and mask.shape == (12, 48) and mask.sum() == 500
    targets = np.concatenate([row[1:][m > 0] for row, m in zip(tokens, mask)])
    assert bytes(targets.astype(np.uint8)) == raw[4502 + 1:]
    assert bytes(tokens[10].astype(np.uint8)) == raw[-49:]  # the tail window is the last context+1 bytes
    assert mask[10].tolist() == [0.0] * 28 + [1.0] * 20 and mask[11].sum() == 0


def test_two_processes_read_disjoint_slices_that_cover_the_split(corpus):
    path, raw = corpus
    ds = data.text_dataset(path, "validation", 16)
    rows = {}
    for k in range(2):
        batches = list(data.make_eval_batches(ds, 6, process_index=k, process_count=2))
        rows[k] = np.concatenate([b["tokens"][b["mask"].sum(1) > 0] for b in batches])
    seen = [bytes(r.astype(np.uint8)) for r in np.concatenate([rows[0], rows[1]])]
    assert len(seen) == ds.num_eval_windows() == 32 and len(set(seen)) == len(seen)
    assert set(seen) == {bytes(w) for w in (ds.tokens[min(j * 16, 501 - 17):][:17] for j in range(32))}
    train = data.text_dataset(path, "train", 15)
    starts = []
    for k in range(2):
        it = data.make_train_iterator(train, 8, seed=5, process_index=k, process_count=2)
        starts += [raw.find(bytes(r.astype(np.uint8))) for b in take(it, 35) for r in b["tokens"]]
    assert len(set(starts)) == len(starts) == 280  # one epoch shared out, no window read twice


def test_bad_text_inputs_give_clear_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        data.text_dataset(empty, "train", 8)
    short = tmp_path / "short.txt"
    short.write_bytes(b"x" * 50)  # 45 train bytes
    with pytest.raises(ValueError, match=r"train split .* has 45 bytes, fewer than context \+ 1 = 65"):
        data.text_dataset(short, "train", 64)
    with pytest.raises(FileNotFoundError, match="neither a known corpus .* nor a file"):
        data.text_dataset(tmp_path / "missing.txt", "train", 8)
    with pytest.raises(ValueError, match="unknown text split 'val'"):
        data.text_dataset(short, "val", 8)
    with pytest.raises(FileNotFoundError, match="tinystories_val_subset.txt not found in .* no download source"):
        data.text_dataset("tinystories", "train", 8, data_dir=tmp_path)


def test_split_rule_matches_a_direct_computation():
    for n in (10, 11, 19, 1_115_394):
        train, val = text.split_bounds(n, "train"), text.split_bounds(n, "validation")
        assert train == (0, int(n * 0.9)) and val == (int(n * 0.9), n)


def test_eval_batches_are_reiterable_and_fixed(corpus):
    path, _ = corpus
    batches = data.make_eval_batches(data.text_dataset(path, "validation", 16), 8, process_index=0, process_count=1)
    first, second = list(batches), list(batches)
    assert len(first) == len(batches) and all(
        np.array_equal(a["tokens"], b["tokens"]) for a, b in itertools.zip_longest(first, second)
    )


def test_worker_processes_give_the_same_batches_and_restore_exactly(corpus):
    path, _ = corpus
    ds = data.text_dataset(path, "train", 31)
    make = lambda workers: data.make_train_iterator(  # noqa: E731
        ds, 4, seed=2, process_index=0, process_count=1, worker_count=workers
    )
    reference = take(make(0), 8)
    pooled = make(2)
    head = take(pooled, 5)
    state = data.iterator_state(pooled)
    tail = take(data.restore_iterator(make(2), state), 3)
    assert all(np.array_equal(x["tokens"], y["tokens"]) for x, y in zip(head + tail, reference))
