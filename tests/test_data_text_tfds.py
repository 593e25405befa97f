"""Text through TFDS: corpora prepared into ArrayRecord byte for byte, reuse, atomic writes, and "tfds:<name>"."""
import os
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data
from data import tfds_builder

SHARED = pathlib.Path(os.environ.get("MODZOO_DATA_DIR", "/nonexistent"))
needs_shared = pytest.mark.skipif(not (SHARED / "tinyshakespeare.txt").is_file(), reason="shared data not present")
STORIES = {
    "train": ["Once upon a time.", "", "Un café, s'il vous plaît ☕", "The end."],  # "" still gets separators
    "test": ["Tiny.", "Tests!"],
}


@pytest.fixture
def corpus(tmp_path):
    """A 200,003-byte file of seeded random bytes (train 180,002 = 3 records of up to 64 KiB) and its bytes."""
    raw = np.random.default_rng(7).integers(0, 256, 200_003, dtype=np.uint8).tobytes()
    path = tmp_path / "corpus.txt"
    path.write_bytes(raw)
    return path, raw


@pytest.fixture
def preparations(monkeypatch):
    """Counts ModzooText preparations."""
    calls = []
    prepare = tfds_builder.ModzooText.download_and_prepare

    def counted(self, *args, **kwargs):
        calls.append(self)
        return prepare(self, *args, **kwargs)

    monkeypatch.setattr(tfds_builder.ModzooText, "download_and_prepare", counted)
    return calls


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A TFDS folder holding "tiny_stories_text" (train/test; features text, raw bytes, label), prepared here."""

    class TinyStoriesText(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("0.1.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "text": tfds.features.Text(),
                "raw": tfds.features.Tensor(shape=(), dtype=np.object_),
                "label": tfds.features.ClassLabel(num_classes=2),
            }), disable_shuffling=True)

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in STORIES}

        def _generate_examples(self, split):
            for i, story in enumerate(STORIES[split]):
                yield i, {"text": story, "raw": f"<{i}>".encode(), "label": i % 2}

    folder = tmp_path_factory.mktemp("tfds")
    TinyStoriesText(data_dir=folder, file_format="array_record").download_and_prepare()
    return folder


def test_prepared_splits_are_the_file_bytes_and_are_reused(corpus, tmp_path, preparations):
    path, raw = corpus
    cache = tmp_path / "cache"
    train = data.text_dataset(path, "train", 8, cache_dir=cache)
    val = data.text_dataset(path, "validation", 8, cache_dir=cache)
    assert bytes(train.tokens) == raw[:180_002] and bytes(val.tokens) == raw[180_002:]
    assert train.tokens.dtype == np.uint8 and not train.tokens.flags.writeable
    assert len(preparations) == 1  # both splits come from one preparation
    folder = tfds_builder.prepared_dir(path, tfds_builder.ModzooText, cache)
    assert folder.parents[1].name.startswith("corpus-")
    records = tfds.builder_from_directory(folder).as_data_source()
    assert [len(r["text"]) for r in records["train"]] == [65_536, 65_536, 48_930]
    assert [len(r["text"]) for r in records["validation"]] == [20_001]
    assert bytes(data.text_dataset(path, "train", 8, cache_dir=cache).tokens) == raw[:180_002]
    assert len(preparations) == 1  # the second call reuses the prepared copy
    path.write_bytes(raw[::-1])  # a changed file is prepared again
    assert bytes(data.text_dataset(path, "validation", 8, cache_dir=cache).tokens) == raw[::-1][180_002:]
    assert len(preparations) == 2


def test_an_interrupted_preparation_leaves_no_copy(corpus, tmp_path, monkeypatch):
    path, raw = corpus
    cache = tmp_path / "cache"
    generate = tfds_builder.ModzooText._generate_examples

    def failing(self, start, stop):
        yield from list(generate(self, start, stop))[:1]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tfds_builder.ModzooText, "_generate_examples", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        data.text_dataset(path, "train", 8, cache_dir=cache)
    folder = tfds_builder.prepared_dir(path, tfds_builder.ModzooText, cache)
    assert not folder.exists()  # TFDS wrote into a temporary folder that was never renamed into place
    monkeypatch.undo()
    assert bytes(data.text_dataset(path, "train", 8, cache_dir=cache).tokens) == raw[:180_002]
    assert (folder / "dataset_info.json").is_file()


def test_a_copy_another_process_finishes_first_is_used(corpus, tmp_path, monkeypatch):
    path, raw = corpus
    cache = tmp_path / "cache"
    root = tfds_builder.prepared_dir(path, tfds_builder.ModzooText, cache).parents[1]
    generate = tfds_builder.ModzooText._generate_examples
    raced = []

    def racing(self, start, stop):
        if not raced:  # another host prepares the same copy and renames it into place first
            raced.append(True)
            tfds_builder.ModzooText(
                path=path, splits={"train": (0, 180_002), "validation": (180_002, 200_003)},
                data_dir=root, file_format="array_record",
            ).download_and_prepare()
        yield from generate(self, start, stop)

    monkeypatch.setattr(tfds_builder.ModzooText, "_generate_examples", racing)
    assert bytes(data.text_dataset(path, "validation", 8, cache_dir=cache).tokens) == raw[180_002:]
    assert raced and not list(root.glob("*/incomplete*"))


@needs_shared
def test_tinyshakespeare_prepared_copy_is_the_file_exactly(tmp_path):
    raw = (SHARED / "tinyshakespeare.txt").read_bytes()
    train = data.text_dataset("tinyshakespeare", "train", 64, cache_dir=tmp_path)
    val = data.text_dataset("tinyshakespeare", "validation", 64, cache_dir=tmp_path)
    assert bytes(train.tokens) == raw[:1_003_854] and bytes(val.tokens) == raw[1_003_854:]
    assert train.name == "tinyshakespeare"
    folder = tfds_builder.prepared_dir(SHARED / "tinyshakespeare.txt", tfds_builder.ModzooText, tmp_path)
    splits = tfds.builder_from_directory(folder).info.splits
    assert (splits["train"].num_examples, splits["validation"].num_examples) == (16, 2)  # 64 KiB records


def test_tfds_text_feature_is_joined_in_order(tfds_dir):
    train = data.text_dataset("tfds:tiny_stories_text", "train", 4, data_dir=tfds_dir)
    assert bytes(train.tokens) == "\n\n".join(STORIES["train"]).encode()
    assert train.name == "tfds:tiny_stories_text" and train.split == "train"
    test = data.text_dataset("tfds:tiny_stories_text", "test", 4, data_dir=tfds_dir, separator=b"")
    assert bytes(test.tokens) == b"Tiny.Tests!"
    raw = data.text_dataset("tfds:tiny_stories_text", "train", 4, data_dir=tfds_dir, feature="raw", separator=b"|")
    assert bytes(raw.tokens) == b"<0>|<1>|<2>|<3>"
    head = data.text_dataset("tfds:tiny_stories_text", "train[:2]", 4, data_dir=tfds_dir)  # TFDS slices work
    assert bytes(head.tokens) == b"Once upon a time.\n\n"
    batch = next(data.make_train_iterator(train, 2, seed=0, process_index=0, process_count=1))
    assert batch["tokens"].shape == (2, 5)
    assert bytes(batch["tokens"][0].astype(np.uint8)) in bytes(train.tokens)


def test_tfds_text_bad_inputs_give_clear_errors(tfds_dir):
    name = "tfds:tiny_stories_text"
    with pytest.raises(ValueError, match="no feature 'story'") as error:
        data.text_dataset(name, "train", 4, data_dir=tfds_dir, feature="story")
    assert "\n" not in str(error.value) and "(text, raw, label)" in str(error.value)
    with pytest.raises(ValueError, match=f"feature 'label' of {name} is ClassLabel.*, not text or bytes"):
        data.text_dataset(name, "train", 4, data_dir=tfds_dir, feature="label")
    with pytest.raises(ValueError, match=f"unknown split 'validation' for {name}: available test, train$"):
        data.text_dataset(name, "validation", 4, data_dir=tfds_dir)
    with pytest.raises(ValueError, match=f"test split of {name} has 13 bytes, fewer than"):
        data.text_dataset(name, "test", 64, data_dir=tfds_dir)
    with pytest.raises(FileNotFoundError, match="'tiny_stories_text' is not prepared under"):
        data.text_dataset(name, "train", 4, data_dir=tfds_dir / "elsewhere")
