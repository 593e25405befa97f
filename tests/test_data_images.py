"""Images: the real CIFAR-10 JPEG copy, the canonical tarball format, image folders, TFDS, pipelines, errors."""
import dataclasses
import io
import os
import pathlib
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import data
from data.augment import random_crop_flip

SHARED = pathlib.Path(os.environ.get("MODZOO_DATA_DIR", "/nonexistent"))
CLASSES = ("cat", "dog", "emu")


def _pixels(n, shape=(6, 5, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def write_tree(root, images_per_class=(3, 2), shape=(6, 5, 3)):
    """An image-folder tree of PNGs (lossless); returns {(split, class, i): pixels}."""
    truth = {}
    for s, (split, count) in enumerate(zip(("train", "test"), images_per_class)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, pixels in enumerate(_pixels(count, shape, seed=100 * s + c)):
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
                truth[(split, name, i)] = pixels
    return truth


def write_cifar_python(path, per_batch=4):
    """A tarball in the exact cifar-10-python.tar.gz layout, with small batches; returns (images HWC, labels)."""
    rng = np.random.default_rng(1)
    all_images, all_labels = {}, {}
    with tarfile.open(path, "w:gz") as archive:
        def add(name, obj):
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))

        add("batches.meta", {b"label_names": [n.encode() for n in CLASSES], b"num_vis": 3072})
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            chw = rng.integers(0, 256, (per_batch, 3, 32, 32), dtype=np.uint8)
            labels = rng.integers(0, 3, per_batch).tolist()
            add(name, {b"batch_label": name.encode(), b"labels": labels, b"data": chw.reshape(per_batch, 3072),
                       b"filenames": [b"x.png"] * per_batch})
            all_images[name] = np.stack([np.stack([img[c] for c in range(3)], axis=-1) for img in chw])
            all_labels[name] = labels
    return all_images, all_labels


def records(dataset):
    return [dataset.source[i] for i in range(len(dataset))]


def synthetic(n=40, augment=True):
    """A 40-image in-memory dataset whose label is the example's index (to track which examples were read)."""
    source = [{"image": img, "label": i} for i, img in enumerate(_pixels(n, (8, 8, 3), seed=9))]
    return data.ImageDataset(source, "synthetic", "train", tuple(map(str, range(n))), (0.5,) * 3, (0.25,) * 3, augment)


def test_cifar10_jpeg_copy_counts_shapes_and_mean(cifar_cache):
    train = data.image_dataset("cifar10", "train", cache_dir=cifar_cache)
    test = data.image_dataset("cifar10", "test", cache_dir=cifar_cache)
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.class_names[:3] == ("airplane", "automobile", "bird") and train.num_classes == 10
    sums = np.zeros(3)
    labels = []
    for start in range(0, 50_000, 2_500):
        batch = train.source.__getitems__(list(range(start, start + 2_500)))
        images = np.stack([r["image"] for r in batch])
        assert images.shape == (2_500, 32, 32, 3) and images.dtype == np.uint8
        sums += images.reshape(-1, 3).sum(0, dtype=np.float64)
        labels += [r["label"] for r in batch]
    np.testing.assert_allclose(sums / (50_000 * 32 * 32 * 255), (0.4913, 0.4821, 0.4465), atol=1e-3)
    assert np.bincount(labels).tolist() == [5_000] * 10
    assert np.bincount([r["label"] for r in records(test)]).tolist() == [1_000] * 10
    assert train.source[0]["label"] == 0 and train.source[49_999]["label"] == 9  # source order kept
    with pytest.raises(ValueError, match="unknown split 'validation' for cifar10: available test, train"):
        data.image_dataset("cifar10", "validation", cache_dir=cifar_cache)


def test_cifar10_training_batches_are_augmented_and_normalized(cifar_cache):
    train = data.image_dataset("cifar10", "train", cache_dir=cifar_cache)
    batch = next(data.make_train_iterator(train, 64, seed=0, process_index=0, process_count=1))
    assert batch["image"].shape == (64, 32, 32, 3) and batch["image"].dtype == np.float32
    assert batch["label"].shape == (64,) and batch["label"].dtype == np.int32
    evalb = data.make_eval_batches(data.image_dataset("cifar10", "test", cache_dir=cifar_cache), 100,
                                   process_index=0, process_count=1)[0]
    first = data.image_dataset("cifar10", "test", cache_dir=cifar_cache).source[0]["image"]
    undone = evalb["image"][0] * np.array(data.augment.CIFAR10_STD) + np.array(data.augment.CIFAR10_MEAN)
    np.testing.assert_allclose(undone * 255, first, atol=1e-3)


def test_canonical_cifar_tarball_is_parsed(tmp_path, monkeypatch):
    images, labels = write_cifar_python(tmp_path / "cifar-10-python.tar.gz")
    md5 = data.file_digest(tmp_path / "cifar-10-python.tar.gz", "md5")
    small = dataclasses.replace(data.paths.CIFAR10_PYTHON, md5=md5)
    monkeypatch.setattr(data.images, "_CIFAR10_FILES", (small,))  # the catalogue knows this small stand-in
    train = data.image_dataset("cifar10", "train", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    test = data.image_dataset("cifar10", "test", data_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert train.class_names == CLASSES and len(train) == 20 and len(test) == 4
    want = np.concatenate([images[f"data_batch_{i}"] for i in range(1, 6)])
    got = records(train)
    np.testing.assert_array_equal(np.stack([r["image"] for r in got]), want)  # CHW -> HWC, in file order
    assert [r["label"] for r in got] == sum((labels[f"data_batch_{i}"] for i in range(1, 6)), [])
    np.testing.assert_array_equal(np.stack([r["image"] for r in records(test)]), images["test_batch"])
    assert train.mean == data.augment.CIFAR10_MEAN


@pytest.mark.parametrize("as_tar", [False, True])
def test_image_folder_and_its_tarball(tmp_path, as_tar):
    truth = write_tree(tmp_path / "tree" / "wrapped")
    path = tmp_path / "tree"
    if as_tar:
        path = tmp_path / "tree.tar.gz"
        with tarfile.open(path, "w:gz") as archive:
            archive.add(tmp_path / "tree" / "wrapped", arcname="some/prefix")
    ds = data.image_dataset(path, "train", cache_dir=tmp_path / "cache")
    assert ds.class_names == CLASSES and len(ds) == 9
    expected = [truth[("train", c, i)] for c in CLASSES for i in range(3)]
    got = records(ds)
    np.testing.assert_array_equal(np.stack([r["image"] for r in got]), np.stack(expected))
    assert [r["label"] for r in got] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    pixels = np.stack(expected).reshape(-1, 3) / 255
    np.testing.assert_allclose(ds.mean, pixels.mean(0), rtol=1e-9)
    np.testing.assert_allclose(ds.std, pixels.std(0), rtol=1e-9)
    assert len(data.image_dataset(path, "test", cache_dir=tmp_path / "cache")) == 6


def test_tfds_dataset_prepared_elsewhere_is_read_by_name(tmp_path):
    class TinyLabelled(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("0.1.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(6, 5, 3)),
                "label": tfds.features.ClassLabel(names=list(CLASSES)),
            }), disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0), "test": self._generate_examples(1)}

        def _generate_examples(self, seed):
            for i, img in enumerate(_pixels(6, seed=seed)):
                png = io.BytesIO()
                Image.fromarray(img).save(png, format="png")  # tfds encodes numpy arrays with TensorFlow only
                yield i, {"image": png.getvalue(), "label": i % 3}

    TinyLabelled(data_dir=tmp_path, file_format="array_record").download_and_prepare()
    ds = data.image_dataset("tfds:tiny_labelled", "test", data_dir=tmp_path)
    np.testing.assert_array_equal(np.stack([r["image"] for r in records(ds)]), _pixels(6, seed=1))
    np.testing.assert_allclose(ds.mean, (_pixels(6, seed=0).reshape(-1, 3) / 255).mean(0), rtol=1e-9)
    batch = next(data.make_train_iterator(ds, 4, seed=0, process_index=0, process_count=1))
    assert batch["image"].shape == (4, 6, 5, 3) and ds.class_names == CLASSES
    with pytest.raises(FileNotFoundError, match="not prepared under"):
        data.image_dataset("tfds:tiny_labelled", "test", data_dir=tmp_path / "elsewhere")


def test_same_seed_same_batches_and_restore_mid_epoch():
    ds = synthetic()
    make = lambda seed: data.make_train_iterator(ds, 8, seed=seed, process_index=0, process_count=1)  # noqa: E731
    a, b, c = make(1), make(1), make(2)
    first = [next(a) for _ in range(3)]
    assert all(np.array_equal(x["image"], next(b)["image"]) for x in first)
    assert not all(np.array_equal(x["label"], next(c)["label"]) for x in first)
    state = data.iterator_state(a)  # mid-epoch: 24 of 40 images read
    expected = [next(a) for _ in range(6)]  # runs into the next epochs
    restored = data.restore_iterator(make(1), state)
    for want in expected:
        got = next(restored)
        np.testing.assert_array_equal(got["image"], want["image"])
        np.testing.assert_array_equal(got["label"], want["label"])
    epoch0 = np.concatenate([x["label"] for x in first] + [expected[0]["label"], expected[1]["label"]])
    assert sorted(epoch0.tolist()) == list(range(40))  # an epoch is a permutation
    epoch1 = np.concatenate([x["label"] for x in expected[2:]] + [next(restored)["label"]])
    assert sorted(epoch1.tolist()) == list(range(40)) and not np.array_equal(epoch0, epoch1)


def test_two_processes_read_disjoint_slices_that_cover_the_dataset():
    ds = synthetic(augment=False)
    seen = []
    for k in range(2):
        it = data.make_train_iterator(ds, 8, seed=4, process_index=k, process_count=2)
        seen.append(np.concatenate([next(it)["label"] for _ in range(5)]))  # 5 x 4 rows = half an epoch
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == set(range(40))
    evals = [list(data.make_eval_batches(ds, 6, process_index=k, process_count=2)) for k in range(2)]
    assert len(evals[0]) == len(evals[1]) == 7  # 40 over 2 hosts x 3 rows, padded to equal counts
    labels = [np.concatenate([b["label"][b["mask"] > 0] for b in e]) for e in evals]
    assert sorted(np.concatenate(labels).tolist()) == list(range(40)) and not set(labels[0]) & set(labels[1])
    assert sum(b["mask"].sum() for e in evals for b in e) == 40


def test_one_host_and_two_hosts_augment_the_same_global_batch_bit_for_bit():
    ds = synthetic()
    one = data.make_train_iterator(ds, 8, seed=4, process_index=0, process_count=1)
    hosts = [data.make_train_iterator(ds, 8, seed=4, process_index=k, process_count=2) for k in range(2)]
    plain = data.make_train_iterator(synthetic(augment=False), 8, seed=4, process_index=0, process_count=1)
    for _ in range(6):  # into the second epoch
        want, halves, unaugmented = next(one), [next(h) for h in hosts], next(plain)
        for key in ("image", "label"):
            # host k holds rows k, k + 2, ... of the global batch: interleaved, the hosts' rows are the one host's
            got = np.stack([h[key] for h in halves], axis=1).reshape(want[key].shape)
            np.testing.assert_array_equal(got, want[key])
        np.testing.assert_array_equal(want["label"], unaugmented["label"])
        assert not np.array_equal(want["image"], unaugmented["image"])  # augmented


def test_random_crop_flip_is_a_padded_crop_or_its_mirror():
    images = _pixels(16, (8, 8, 3), seed=5)
    out = random_crop_flip(images, np.random.default_rng(0))
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    flips = 0
    for img, pad, got in zip(images, padded, out):
        matches = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (0, 1)
                   if np.array_equal(got, (lambda w: w[:, ::-1] if f else w)(pad[dy:dy + 8, dx:dx + 8]))]
        assert matches, "augmented image is not a crop of the padded original"
        flips += all(f for _, _, f in matches)
    assert 0 < flips < 16
    np.testing.assert_array_equal(out, random_crop_flip(images, np.random.default_rng(0)))


def test_bad_image_inputs_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00 certainly not a gzip stream" * 10)
    with pytest.raises(ValueError, match=r"cannot read archive .*bad.tar.gz.*corrupt"):
        data.image_dataset(bad, "train", cache_dir=tmp_path / "cache")
    truncated = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_python(truncated)
    truncated.write_bytes(truncated.read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"cannot read archive .*cifar-10-python.tar.gz"):  # as a path: unchecked
        data.image_dataset(truncated, "train", cache_dir=tmp_path / "cache")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"image folder .*empty has no class folders with images under train/"):
        data.image_dataset(tmp_path / "empty", "train", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="no image dataset at"):
        data.image_dataset(tmp_path / "nothing", "train", cache_dir=tmp_path / "cache")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        for name in ("batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6))):
            payload = b"cos\nsystem\n(S'echo owned'\ntR."  # a pickle that would run a shell command
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    with pytest.raises(ValueError, match="not a valid CIFAR-10 python archive: refusing to unpickle os.system"):
        data.image_dataset(evil, "train", cache_dir=tmp_path / "cache")
    partial = tmp_path / "partial.tar.gz"
    with tarfile.open(partial, "w:gz") as archive:
        archive.add(evil, arcname="cifar-10-batches-py/test_batch")
    with pytest.raises(ValueError, match="not a complete CIFAR-10 python archive: missing data_batch_1"):
        data.image_dataset(partial, "train", cache_dir=tmp_path / "cache")
