"""A run's datasets, and for text its tokenizer.

``config.data.tokenizer`` (text only; default ``"bytes"``) is ``"bytes"``,
``"bpe:N"`` (byte-level BPE of N tokens learnt from the train split, data.tokenizer),
a pretrained entry's name (the tokenizer shipped with its weights, as a fine-tuning
run needs) or the path of a tokenizer ``.json``. A run saves its tokenizer in its
workdir (:data:`TOKENIZER_FILE`) before its first step and always reads that
file back when it resumes or is evaluated, so a run keeps one tokenizer for life.
The model's ``vocab`` must equal the tokenizer's size.
"""
from __future__ import annotations

import pathlib

import ml_collections

import data
from zoo import pretrained
from zoo.models.base import modality_of

TOKENIZER_FILE = "tokenizer.json"


def saved_tokenizer(source) -> pathlib.Path | None:
    """The tokenizer file kept with ``source`` (a pretrained name or a run's workdir), or None (it reads bytes)."""
    if not source:
        return None
    if str(source) in pretrained.catalog():
        return pretrained.tokenizer_path(str(source))
    path = pathlib.Path(source) / TOKENIZER_FILE
    return path if path.is_file() else None


def load_saved_tokenizer(source):
    """The tokenizer kept with ``source`` (:func:`saved_tokenizer`), loaded; None if there is none (bytes)."""
    path = saved_tokenizer(source)
    if path is None:
        return None
    from data.tokenizer import load

    return load(path)


def make_tokenizer(spec: str, train_bytes: data.TextDataset):
    """The tokenizer ``spec`` names (module docstring), or None for bytes; ``bpe:N`` learns from ``train_bytes``."""
    from data import tokenizer

    if spec == tokenizer.BYTES:
        return None
    if spec in pretrained.catalog():
        shipped = pretrained.tokenizer(spec)
        if shipped is None:
            raise ValueError(f"pretrained {spec!r} reads bytes and has no tokenizer: use --config.data.tokenizer=bytes")
        return shipped
    if spec.endswith(".json"):
        if not pathlib.Path(spec).is_file():
            raise FileNotFoundError(f"tokenizer file {spec} does not exist: give a tokenizer.json a run saved, "
                                    "'bytes' or 'bpe:N'")
        return tokenizer.load(spec)
    return tokenizer.train_bpe(train_bytes.tokens.tobytes(), tokenizer.parse_spec(spec))


def datasets(config: ml_collections.ConfigDict, model_cfg, source=None):
    """(train, evaluation) datasets for the model's modality; text ones tokenized by the tokenizer saved with
    ``source`` (a workdir or pretrained name) if it has one, else by ``config.data.tokenizer``'s."""
    if modality_of(model_cfg) != "text":
        return (data.image_dataset(config.data.name, "train", augment=config.data.get("augment", True)),
                data.image_dataset(config.data.name, config.data.get("eval_split", "test"), augment=False))
    # the short validation split first: too short, it stops before preparing
    validation = data.text_dataset(config.data.name, "validation", model_cfg.context)
    train = data.text_dataset(config.data.name, "train", model_cfg.context)
    tok = load_saved_tokenizer(source)
    if tok is None:
        tok = make_tokenizer(str(config.data.get("tokenizer", "bytes")), train)
    if tok is not None:
        train, validation = train.tokenized(tok), validation.tokenized(tok)
    if train.vocab_size != model_cfg.vocab:
        spec = config.data.get("tokenizer", "bytes")
        raise ValueError(f"the tokenizer ({spec}) has {train.vocab_size} tokens but the model's vocab is "
                         f"{model_cfg.vocab}: set --config.model.vocab={train.vocab_size}")
    return train, validation


def check_init_tokenizer(init_from: str, train_ds) -> None:
    """A one-line error when a run initialized from ``init_from`` would read text with another tokenizer than
    the one its weights were trained with."""
    theirs = load_saved_tokenizer(init_from)
    ours = getattr(train_ds, "tokenizer", None)
    if theirs is None and ours is None:
        return
    if theirs is None or ours is None or theirs.to_json() != ours.to_json():
        want = "bytes" if theirs is None else init_from if init_from in pretrained.catalog() else \
            saved_tokenizer(init_from)
        raise ValueError(f"{init_from} was trained with another tokenizer than this run's: set "
                         f"--config.data.tokenizer={want}")
