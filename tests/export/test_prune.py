"""Vocabulary pruning on a tiny SentencePiece-style (Unigram) BERT built in the test."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("optimum.exporters.onnx")

from tokenizers import Tokenizer  # noqa: E402

from xned.errors import InputError  # noqa: E402
from xned.export.encoder.optimum_export import export_encoder  # noqa: E402
from xned.export.encoder.prune import prune_checkpoint  # noqa: E402

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁hello", "▁world", "▁foo", "▁bar", "▁he", "llo", "wor", "ld"]
PIECES += list("helowrdfabñ") + ["▁ñandú", "<mask>"]


@pytest.fixture(scope="module")
def unigram_model(tmp_path_factory, tiny_bert):
    from tokenizers import models, normalizers, pre_tokenizers, processors

    d = tmp_path_factory.mktemp("tiny-unigram")
    vocab = [(p, 0.0 if p.startswith("<") else -1.0 - i * 0.1) for i, p in enumerate(PIECES)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=3))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.save(str(d / "tokenizer.json"))
    # like mE5: a few embedding rows beyond the tokenizer
    return tiny_bert(d, len(PIECES) + 3, 128, pad_token_id=1)


def test_prune_keeps_used_pieces_and_their_rows(unigram_model, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world\n", encoding="utf-8")
    out = tmp_path / "pruned"
    info = prune_checkpoint(unigram_model, out, [str(corpus)])
    old_tok = Tokenizer.from_file(str(unigram_model / "tokenizer.json"))
    new_tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    kept = [p for p, _ in json.loads((out / "tokenizer.json").read_text())["model"]["vocab"]]
    assert "▁foo" not in kept and "▁bar" not in kept and "▁ñandú" not in kept  # unused multi-char pieces go
    assert {"▁hello", "▁world", "ñ", "<mask>"} <= set(kept)  # used pieces, single characters, specials stay
    assert kept[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert info["pieces_after"] == len(kept) < info["pieces_before"] == len(PIECES)
    # same pieces for covered text; uncovered text falls back to characters, never to <unk>
    assert new_tok.encode("hello world").tokens == old_tok.encode("hello world").tokens
    assert "▁foo" in old_tok.encode("foo").tokens
    assert new_tok.encode("foo bar").tokens == ["<s>", "▁", "f", "o", "o", "▁", "b", "a", "r", "</s>"]
    assert new_tok.encode("hello").ids[0] == new_tok.token_to_id("<s>") == 0
    # embedding rows follow their pieces
    from safetensors.numpy import load_file

    old = load_file(str(unigram_model / "model.safetensors"))["embeddings.word_embeddings.weight"]
    new = load_file(str(out / "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert new.shape == (len(kept), 32)
    for piece in ("▁hello", "ñ", "<mask>", "<pad>"):
        assert np.array_equal(new[new_tok.token_to_id(piece)], old[old_tok.token_to_id(piece)])
    assert json.loads((out / "config.json").read_text())["vocab_size"] == len(kept)


def test_export_with_pruning_validates_and_embeds_like_the_original(unigram_model, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world\n", encoding="utf-8")
    full = export_encoder(unigram_model, tmp_path / "full", quantize="none", max_length=32)
    pruned = export_encoder(
        unigram_model, tmp_path / "pruned", quantize="none", max_length=32, prune_vocab=[str(corpus)]
    )
    assert pruned["vocab_pruning"]["pieces_after"] < len(PIECES)
    assert pruned["validation"]["fp32_max_abs_diff"] <= 1e-4 and full["dim"] == 32
    from xned.engine.encoder import Encoder

    a = Encoder(tmp_path / "full").embed_texts(["hello world"])
    b = Encoder(tmp_path / "pruned").embed_texts(["hello world"])
    assert np.allclose(a, b, atol=1e-5)


def test_prune_rejects_unknown_spec(unigram_model, tmp_path):
    with pytest.raises(InputError, match="neither a file nor"):
        prune_checkpoint(unigram_model, tmp_path / "x", ["no/such/file.txt"])
