"""Tiny random BERT checkpoints (with their fast tokenizers) built in the test session."""

from pathlib import Path

import pytest


def save_tiny_bert(d: Path, vocab_size: int, max_positions: int, **config) -> Path:
    """A random 2-layer, 32-dim BERT saved in ``d`` (seeded: the same weights every run)."""
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    cfg = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        **config,
    )
    torch.manual_seed(0)
    transformers.BertModel(cfg, add_pooling_layer=False).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_bert():
    """``save_tiny_bert`` for tests that bring their own tokenizer."""
    return save_tiny_bert


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    d = tmp_path_factory.mktemp("tiny-bert")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [chr(c) for c in range(0x21, 0x7F)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(d / "tokenizer.json"))
    return save_tiny_bert(d, len(words), 256)
