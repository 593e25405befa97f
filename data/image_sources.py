"""Raw image datasets, read once for preparation: the CIFAR-10 python tarball, image-folder trees, and tars of them.

`open_image_source(path)` inspects `path` and returns an ImageSource whose
`examples(split)` yields (uint8 HWC image, int label) in a fixed order:

* the canonical `cifar-10-python.tar.gz` (pickled `data_batch_1..5` and
  `test_batch` dicts, b"data" uint8 [10000, 3072] in CHW order, b"labels";
  class names from `batches.meta`), read with an unpickler that only builds
  dicts, lists, bytes and numpy arrays;
* an image-folder tree `{train,test}/<class>/*.{jpg,jpeg,png}`, at `path` or in
  its single subfolder; labels follow the sorted class-folder names of train/;
* a tar (optionally gzipped) of such a tree, at any prefix. The archive is read
  into memory once (fine for CIFAR-sized sets; extract bigger ones and give the
  folder).

Images are decoded with Pillow and converted to RGB, in this process: on the
2-core machines measured, a thread pool gained nothing (the GIL) and a spawned
process pool was slower and needs a `__main__` guard in every calling script.
"""
from __future__ import annotations

import codecs
import dataclasses
import io
import os
import pathlib
import pickle
import re
import tarfile
import zlib
from collections.abc import Iterator

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_TREE_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/([^/]+)$")
_CIFAR_MEMBER = re.compile(r"(?:^|/)(data_batch_[1-5]|test_batch|batches\.meta)$")
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a hostile archive cannot run code."""

    _RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array-rebuilding function, wherever it lives
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles written by Python 3 store bytes
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are expected")
        return self._ALLOWED[(module, name)]


def _unpickle(payload: bytes, what: str) -> dict:
    obj = _ArrayUnpickler(io.BytesIO(payload), encoding="bytes").load()
    if not isinstance(obj, dict):
        raise ValueError(f"{what} holds a {type(obj).__name__}, not the dict of the CIFAR-10 python format")
    return obj


def decode_image(payload: bytes | str | os.PathLike) -> np.ndarray:
    """Decode one image file (a path or its bytes) to uint8 RGB [H, W, 3]."""
    with Image.open(io.BytesIO(payload) if isinstance(payload, bytes) else payload) as image:
        return np.asarray(image.convert("RGB"))


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSource:
    """A raw image dataset ready to be decoded: class names, image shape, and per-split items.

    items[split] is a list of (name, label, payload): payload is a path or the
    encoded bytes of one image file, or (for the CIFAR-10 tarball) a decoded
    uint8 HWC array.
    """

    path: pathlib.Path
    kind: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    items: dict[str, list[tuple[str, int, object]]]

    @property
    def splits(self) -> tuple[str, ...]:
        """Split names that have at least one image."""
        return tuple(s for s, v in self.items.items() if v)

    def examples(self, split: str) -> Iterator[tuple[np.ndarray, int]]:
        """Yield (uint8 HWC image, label) for `split` in order, decoding files as they come."""
        for name, label, payload in self.items[split]:
            image = payload if self.kind == "cifar-python" else decode_image(payload)
            if image.shape != self.image_shape:
                raise ValueError(
                    f"image {name} in {self.path} is {image.shape}, but the first is {self.image_shape}:"
                    " every image must have the same size"
                )
            yield image, label


def _corrupt(path: pathlib.Path, error: BaseException) -> ValueError:
    return ValueError(
        f"cannot read archive {path}: {' '.join(str(error).split())} (the file is corrupt or not a tar/tar.gz):"
        " delete it and fetch it again"
    )


def _read_archive(path: pathlib.Path) -> dict[str, bytes]:
    """Bytes of every member that is a CIFAR-10 batch or a tree image, keyed by member name."""
    wanted = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                if _CIFAR_MEMBER.search(member.name) or (
                    _TREE_MEMBER.search(member.name) and member.name.lower().endswith(IMAGE_SUFFIXES)
                ):
                    wanted[member.name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise _corrupt(path, e) from e
    return wanted


def _cifar_source(path: pathlib.Path, members: dict[str, bytes]) -> ImageSource:
    by_base = {_CIFAR_MEMBER.search(name).group(1): payload for name, payload in members.items()
               if _CIFAR_MEMBER.search(name)}
    missing = [b for b in (*_CIFAR_TRAIN, "test_batch", "batches.meta") if b not in by_base]
    if missing:
        raise ValueError(f"{path} is not a complete CIFAR-10 python archive: missing {', '.join(missing)}")
    try:
        meta = _unpickle(by_base["batches.meta"], "batches.meta")
        class_names = tuple(n.decode() if isinstance(n, bytes) else n for n in meta[b"label_names"])
        items = {}
        for split, bases in (("train", _CIFAR_TRAIN), ("test", ("test_batch",))):
            items[split] = []
            for base in bases:
                batch = _unpickle(by_base[base], base)
                images = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                labels = [int(x) for x in batch[b"labels"]]
                if len(labels) != len(images):
                    raise ValueError(f"{base} has {len(images)} images but {len(labels)} labels")
                items[split] += [(f"{base}[{i}]", lab, img) for i, (lab, img) in enumerate(zip(labels, images))]
    except (pickle.UnpicklingError, KeyError, EOFError, ValueError) as e:
        raise ValueError(f"{path} is not a valid CIFAR-10 python archive: {e}") from e
    return ImageSource(path, "cifar-python", class_names, (32, 32, 3), items)


def _tree_source(path: pathlib.Path, kind: str, files: dict[str, object]) -> ImageSource:
    """Build a source from {relative name: payload} of files laid out as .../{train,test}/<class>/<file>."""
    entries = []
    for name, payload in files.items():
        match = _TREE_MEMBER.search(name)
        if match and name.lower().endswith(IMAGE_SUFFIXES):
            entries.append((match.group(1), match.group(2), name, payload))
    class_names = tuple(sorted({c for split, c, _, _ in entries if split == "train"}))
    if not class_names:
        raise ValueError(
            f"image folder {path} has no class folders with images under train/"
            " (expected train/<class>/*.jpg|*.jpeg|*.png, and the same for test/)"
        )
    label = {c: i for i, c in enumerate(class_names)}
    unknown = sorted({c for split, c, _, _ in entries if c not in label})
    if unknown:
        raise ValueError(f"{path}: test/ has classes that train/ lacks ({', '.join(unknown)}): make them match")
    items = {"train": [], "test": []}
    for split, c, name, payload in sorted(entries, key=lambda e: (e[0], label[e[1]], e[2])):
        items[split].append((name, label[c], payload))
    shape = decode_image(items["train"][0][2]).shape
    return ImageSource(path, kind, class_names, shape, items)


def _folder_files(root: pathlib.Path) -> dict[str, object]:
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    if not (root / "train").is_dir() and len(subdirs) == 1:
        root = subdirs[0]
    return {str(p.relative_to(root)): p for p in sorted(root.glob("*/*/*")) if p.is_file()}


def open_image_source(path: str | os.PathLike) -> ImageSource:
    """Inspect `path` (CIFAR-10 python tarball, image-folder tree, or tar of a tree) and return its ImageSource."""
    path = pathlib.Path(path).expanduser().resolve()
    if path.is_dir():
        return _tree_source(path, "folder", _folder_files(path))
    if not path.is_file():
        raise FileNotFoundError(f"no image dataset at {path}: give an image folder, a tar.gz of one, or cifar10")
    members = _read_archive(path)
    if any(_CIFAR_MEMBER.search(name) for name in members):
        return _cifar_source(path, members)
    return _tree_source(path, "tar", members)
