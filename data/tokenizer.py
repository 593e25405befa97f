"""Tokenizers of text datasets: raw bytes, or byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level variant,
Radford et al. 2019) trained on a corpus's train split with Hugging Face ``tokenizers``.

A spec names one: ``"bytes"`` (vocabulary 256, token = byte; the default) or
``"bpe:N"`` (N >= 257 tokens: the 256 bytes plus merges learnt from the train
split). A trained tokenizer is a :class:`BPE`; it saves to one JSON file (the
``tokenizers`` format) and loads back with :func:`load`.

Every token is a fixed byte string, so ``decode`` is exact concatenation and
``encode`` takes any bytes: UTF-8 text goes through the BPE; bytes that are not
UTF-8 become their single-byte tokens. ``token_bytes[i]`` is the length of
token ``i`` in bytes, from which a loss per token converts to nats per byte,
the unit that compares models across tokenizers.

Training is deterministic (the same text, N and ``tokenizers`` version give
the same file) and cached: :func:`train_bpe` keeps its result under the cache
folder, keyed by the text's sha256, N and the library version, written
atomically.
"""
from __future__ import annotations

import functools
import hashlib
import os
import pathlib
import re

import numpy as np
import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from data.atomic import write_bytes
from data.paths import resolve_cache_dir

BYTES = "bytes"
_SPEC = re.compile(r"bpe:(\d+)")
_UNDECODABLE = re.compile(r"[\udc80-\udcff]+")  # bytes that are not UTF-8, as "surrogateescape" decodes them
_LINE_START = re.compile(r"\n(?=\S)")  # after it, every byte-level pre-tokenizer split starts a new piece
CHUNK = 1 << 20
"""Characters per piece that encoding and training hand to the library at once (it runs pieces in parallel)."""


def chunks(text: str, size: int | None = None) -> list[str]:
    """``text`` cut into pieces of about ``size`` (default :data:`CHUNK`) characters, each cut just after a
    newline that a non-space character follows. GPT-2's pre-tokenizer never joins such a newline to what comes
    after it (only a space may lead a word), so the pieces tokenize to exactly the ids of the whole text."""
    size = size or CHUNK
    out, start = [], 0
    while len(text) - start > size:
        cut = _LINE_START.search(text, start + size)
        if cut is None:
            break
        out.append(text[start:cut.end()])
        start = cut.end()
    out.append(text[start:])
    return out


@functools.cache
def byte_alphabet() -> tuple[str, ...]:
    """The printable character that stands for each byte 0..255 in byte-level BPE (GPT-2's table): printable
    Latin-1 characters stand for themselves, the other 68 bytes for the code points from 256 up, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 256
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b], extra = chr(extra), extra + 1
    return tuple(chars[b] for b in range(256))


def parse_spec(spec: str) -> int | None:
    """The vocabulary size a spec asks for: None for ``"bytes"``, N for ``"bpe:N"``; a one-line error otherwise."""
    if spec == BYTES:
        return None
    match = _SPEC.fullmatch(spec)
    if not match or int(match[1]) < 257:
        raise ValueError(f"unknown tokenizer {spec!r}: use 'bytes' or 'bpe:N' with N >= 257 (e.g. bpe:512),"
                         " a pretrained model's name or a tokenizer .json file")
    return int(match[1])


class BPE:
    """A trained byte-level BPE tokenizer (wraps a ``tokenizers.Tokenizer``)."""

    def __init__(self, tokenizer: tokenizers.Tokenizer):
        self._tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        inverse = {c: b for b, c in enumerate(byte_alphabet())}
        self.pieces = [bytes(inverse[c] for c in tokenizer.id_to_token(i)) for i in range(self.vocab_size)]
        self.token_bytes = np.array([len(p) for p in self.pieces], np.int64)
        self._byte_ids = np.array([tokenizer.token_to_id(c) for c in byte_alphabet()], np.int64)

    def encode(self, text: bytes) -> np.ndarray:
        """Token ids (int64) of ``text``; ``decode`` gives ``text`` back exactly."""
        out, start = [], 0
        decoded = text.decode("utf-8", errors="surrogateescape")
        for bad in _UNDECODABLE.finditer(decoded):
            out.append(self._encode_str(decoded[start:bad.start()]))
            out.append(self._byte_ids[list(bad[0].encode("utf-8", errors="surrogateescape"))])
            start = bad.end()
        out.append(self._encode_str(decoded[start:]))
        return np.concatenate(out)

    def _encode_str(self, text: str) -> np.ndarray:
        if not text:
            return np.zeros(0, np.int64)
        return np.concatenate([np.asarray(e.ids, np.int64) for e in self._tok.encode_batch(chunks(text))])

    def decode(self, ids) -> bytes:
        """The bytes of token ``ids``, concatenated."""
        return b"".join(self.pieces[int(i)] for i in ids)

    def to_json(self) -> str:
        """The tokenizer as the ``tokenizers`` library's JSON."""
        return self._tok.to_str()

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Write :meth:`to_json` to ``path`` atomically."""
        return write_bytes(path, self.to_json().encode())


def load(path: str | os.PathLike) -> BPE:
    """A tokenizer saved by :meth:`BPE.save` (a one-line error for a file that is not one)."""
    try:
        tokenizer = tokenizers.Tokenizer.from_file(str(path))
        return BPE(tokenizer)
    except Exception as e:  # the library raises its own Exception type for unreadable files
        raise ValueError(f"{path} is not a byte-level BPE tokenizer file ({str(e).splitlines()[0]}); "
                         "give a tokenizer.json written by modzoo") from None


def train_bpe(text: bytes, vocab_size: int, *, cache_dir: str | os.PathLike | None = None) -> BPE:
    """Byte-level BPE of ``vocab_size`` tokens learnt from ``text`` (cached, see the module docstring).

    Bytes that are not UTF-8 are left out of training (they stay single-byte
    tokens); a text too short for ``vocab_size`` tokens gives fewer.
    """
    key = hashlib.sha256(text).hexdigest()[:16]
    cached = resolve_cache_dir(cache_dir) / "tokenizers" / f"bpe{vocab_size}-{key}-tokenizers{tokenizers.__version__}.json"
    if cached.is_file():
        return load(cached)
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=list(byte_alphabet()),
                                  special_tokens=[], show_progress=False)
    pieces = _UNDECODABLE.split(text.decode("utf-8", errors="surrogateescape"))
    tokenizer.train_from_iterator([c for piece in pieces for c in chunks(piece)], trainer=trainer)
    bpe = BPE(tokenizer)
    bpe.save(cached)
    return bpe
