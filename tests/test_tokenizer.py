"""Byte-level BPE: exact round trips, agreement with the tokenizers library, determinism, nats per byte, and a run
that saves its tokenizer, resumes with it and samples through it."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest
import tokenizers
from flax import nnx

import data
import zoo
from configs import gpt_shakespeare
from data import tokenizer as T
from zoo.sample import generate
from zoo.train import evaluate, train
from zoo.train.datasets import TOKENIZER_FILE

VOCAB = 300


@pytest.fixture(scope="module")
def corpus():
    """Tiny Shakespeare's train and validation bytes, and a BPE of VOCAB tokens learnt from the train split."""
    train_bytes = data.text_dataset("tinyshakespeare", "train", 16).tokens.tobytes()
    val_bytes = data.text_dataset("tinyshakespeare", "validation", 16).tokens.tobytes()
    return train_bytes, val_bytes, T.train_bpe(train_bytes, VOCAB)


def test_byte_alphabet_is_the_libraries_and_keeps_printable_bytes():
    alphabet = T.byte_alphabet()
    assert len(set(alphabet)) == 256 and set(alphabet) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert alphabet[ord("A")] == "A" and alphabet[ord(" ")] == "\u0120" and alphabet[0] == "\u0100"


def test_encoding_matches_the_library_and_round_trips_any_bytes(corpus):
    _, val_bytes, bpe = corpus
    ids = bpe.encode(val_bytes)
    raw = tokenizers.Tokenizer.from_str(bpe.to_json())  # the library's own encoder and decoder
    assert ids.tolist() == raw.encode(val_bytes.decode()).ids
    assert bpe.decode(ids) == val_bytes and raw.decode(ids.tolist()) == val_bytes.decode()
    assert 1.3 < len(val_bytes) / len(ids) < 1.5  # 44 merges: about 1.4 bytes per token
    assert bpe.vocab_size == VOCAB
    for i in range(VOCAB):  # each token's bytes, as the library decodes it
        text = raw.decode([i])
        if "\ufffd" not in text:
            assert bpe.pieces[i] == text.encode() and bpe.token_bytes[i] == len(text.encode())
    for size in (1000, 37):  # cut into pieces (after newlines before a word) that the library encodes in parallel
        pieces = T.chunks(val_bytes.decode(), size)
        assert len(pieces) > len(val_bytes) // (size * 4) and "".join(pieces) == val_bytes.decode()
        assert np.concatenate([bpe.encode(p.encode()) for p in pieces]).tolist() == ids.tolist()
    mixed = "café ".encode() + b"\xff\xfe\x80" + " ROMEO".encode() + b"\xc3"  # not UTF-8 in places
    assert bpe.decode(bpe.encode(mixed)) == mixed
    assert bpe.encode(b"").tolist() == []


def test_training_is_deterministic_and_cached(corpus, tmp_path):
    train_bytes, _, bpe = corpus
    a = T.train_bpe(train_bytes[:200_000], 280, cache_dir=tmp_path / "a")
    b = T.train_bpe(train_bytes[:200_000], 280, cache_dir=tmp_path / "b")
    assert a.to_json() == b.to_json()
    cached = list((tmp_path / "a" / "tokenizers").iterdir())
    assert len(cached) == 1
    assert T.load(cached[0]).to_json() == a.to_json()
    assert T.train_bpe(train_bytes[:200_000], 280, cache_dir=tmp_path / "a").to_json() == a.to_json()
    path = bpe.save(tmp_path / "t.json")
    assert T.load(path).pieces == bpe.pieces


@pytest.mark.parametrize("spec", ["bpe:10", "bpe", "wordpiece:512", "bpe:-3"])
def test_a_bad_spec_is_a_one_line_error(spec):
    with pytest.raises(ValueError, match=f"unknown tokenizer '{spec}': use 'bytes' or 'bpe:N'"):
        T.parse_spec(spec)


def test_target_counts_are_the_bytes_of_the_scored_tokens(corpus):
    _, val_bytes, bpe = corpus
    ds = data.text_dataset("tinyshakespeare", "validation", 16).tokenized(bpe)
    ids = bpe.encode(val_bytes)
    # every token but the first is scored once: its bytes are the split's minus the first token's
    assert ds.target_counts() == (len(ids) - 1, len(val_bytes) - len(bpe.pieces[ids[0]]))
    # the first 10 windows score tokens 1..160
    assert ds.target_counts(10) == (160, sum(len(bpe.pieces[i]) for i in ids[1:161]))
    raw = data.text_dataset("tinyshakespeare", "validation", 16)
    assert raw.target_counts() == (len(val_bytes) - 1, len(val_bytes) - 1)


def _config(tokenizer="bpe:300", vocab=VOCAB, steps=4):
    c = gpt_shakespeare.get_config("test")
    c.data.tokenizer = tokenizer
    c.model.vocab = vocab
    c.train.update({"steps": steps, "sample_tokens": 12, "eval_batches": 0, "checkpoint_every": 2})
    c.mesh.data = 1
    return c


def test_a_bpe_run_saves_its_tokenizer_resumes_with_it_and_reports_nats_per_byte(corpus, tmp_path):
    _, val_bytes, bpe = corpus
    workdir = tmp_path / "run"
    train(_config(), workdir, stop_at=2, quiet=True)
    assert T.load(workdir / TOKENIZER_FILE).to_json() == bpe.to_json()
    # resumed with another spec in the config, the run keeps the tokenizer it started with
    result = train(_config(tokenizer="bpe:260"), workdir, quiet=True)
    assert T.load(workdir / TOKENIZER_FILE).to_json() == bpe.to_json()
    ids = bpe.encode(val_bytes)
    got = result["eval"]
    assert got["nats_per_byte"] == pytest.approx(
        got["loss"] * (len(ids) - 1) / (len(val_bytes) - len(bpe.pieces[ids[0]])), rel=1e-12)
    assert got["loss"] / got["nats_per_byte"] > 1.3  # about 1.4 bytes per token
    assert evaluate(_config(tokenizer="bytes", vocab=VOCAB), str(workdir)) == pytest.approx(got, rel=1e-6)
    sample = (workdir / "sample.txt").read_bytes()
    assert len(sample) > 12  # 12 tokens of more than one byte on average
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]


def test_greedy_generation_through_the_tokenizer_equals_a_full_recompute(corpus):
    _, _, bpe = corpus
    cfg = zoo.get_config("gpt-tiny").tiny()
    model = zoo.build(dataclasses.replace(cfg, vocab=VOCAB), rngs=nnx.Rngs(0))
    prompt = b"ROMEO: "
    ids = bpe.encode(prompt).tolist()
    count = model.config.context - len(ids)
    for _ in range(count):
        padded = np.zeros((1, model.config.context), np.int32)
        padded[0, :len(ids)] = ids
        ids.append(int(jnp.argmax(model(jnp.asarray(padded))[0, len(ids) - 1])))
    want = bpe.decode(ids[len(bpe.encode(prompt)):])
    assert generate(model, prompt, max_new_tokens=count, temperature=0, tokenizer=bpe) == want
    with pytest.raises(ValueError, match="the tokenizer has 300 tokens, the model's vocab 256"):
        generate(zoo.build(cfg, rngs=nnx.Rngs(0)), prompt, max_new_tokens=2, tokenizer=bpe)
    with pytest.raises(ValueError, match="the model reads 300 tokens, not bytes: pass the tokenizer"):
        generate(model, prompt, max_new_tokens=2)


def test_a_tokenizer_that_does_not_fit_the_model_or_its_init_is_one_line(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"the tokenizer \(bpe:300\) has 300 tokens but the model's vocab is 256: "
                                         r"set --config.model.vocab=300"):
        train(_config(vocab=256), tmp_path / "a", quiet=True)
    assert not (tmp_path / "a").exists()
    (tmp_path / "bytes").mkdir()  # a run's workdir without a tokenizer.json: that run read bytes
    c = _config()
    c.init_from = str(tmp_path / "bytes")  # refused before its (missing) checkpoint is looked for
    with pytest.raises(ValueError, match="was trained with another tokenizer than this run's: set "
                                         "--config.data.tokenizer=bytes"):
        train(c, tmp_path / "b", quiet=True)
    assert not (tmp_path / "b").exists()
