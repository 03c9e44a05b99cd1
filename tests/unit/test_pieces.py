"""tokenizer.model (SentencePiece) against the tokenizers pipeline it replaces: the same ids
and, up to whitespace, the same character offsets, on the default bundle's encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tokenizers import Tokenizer
from typer.testing import CliRunner

import xned
from xned.cli.main import app, main
from xned.engine.encoder import Encoder
from xned.engine.pieces import PieceTokenizer
from xned.errors import BundleError

ENCODER = Path(xned.__file__).parent / "assets" / "default" / "encoder"
TEXTS = [
    "El presidente de Francia visitó Berlín.",
    "Angela Merkel traf Emmanuel Macron in Straßburg; ﬁnanzielle Fragen.",
    "東京スカイツリー・タワーの近くでトヨタ自動車の社長が話した。",
    "Вчера в Москве прошёл саммит ООН.",
    "Ankarak eta Bilboko udalek hitzarmena sinatu dute.",
    "QUAKE : Magnitude 5.4 hits Tōhoku",
    "\nPreston corp  spokesman said ,  '' Capital .",
    "ｆｕｌｌ　ｗｉｄｔｈ ＡＢＣ 😀 🇯🇵",
    "trailing space ",
    "tabs\tand\nnew lines\n\n",
    "",
    " ",
    "x",
    " ".join(f"Word{i} Ricaldos Weiler Helsingissä Turussa" for i in range(120)),  # many parts
]


@pytest.fixture(scope="module")
def both():
    return Tokenizer.from_file(str(ENCODER / "tokenizer.json")), PieceTokenizer(ENCODER / "tokenizer.model")


def test_same_ids_and_offsets_up_to_whitespace(both):
    tok, sp = both
    for text, a, b in zip(
        TEXTS, tok.encode_batch(TEXTS, add_special_tokens=False), sp.encode_batch(TEXTS), strict=True
    ):
        assert b.ids == a.ids, text
        for (p, q), (r, s) in zip(a.offsets, b.offsets, strict=True):
            assert text[p:q].strip() == text[r:s].strip(), (text, p, q, r, s)
    assert sp.encode("", add_special_tokens=True).ids == tok.encode("", add_special_tokens=True).ids
    assert sp.encode("query: ", add_special_tokens=False).ids == tok.encode("query: ", add_special_tokens=False).ids
    assert sp.token_to_id("<pad>") == tok.token_to_id("<pad>") and sp.token_to_id("no such piece") is None


def test_the_encoder_uses_tokenizer_model_where_configured(tmp_path, both):
    enc_dir = tmp_path / "encoder"
    shutil.copytree(ENCODER, enc_dir)
    assert isinstance(Encoder(enc_dir).tokenizer, PieceTokenizer)
    a = Encoder(enc_dir).embed_texts(["Berlin: capital of Germany", "Tokyo"])
    cfg = json.loads((enc_dir / "config.json").read_text(encoding="utf-8"))
    for bad in ("../tokenizer.model", "missing.model"):
        (enc_dir / "config.json").write_text(json.dumps({**cfg, "pieces": bad}), encoding="utf-8")
        with pytest.raises(BundleError, match="is not a file name|is missing"):
            _ = Encoder(enc_dir).tokenizer
    (enc_dir / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "pieces"}), encoding="utf-8")
    assert isinstance(Encoder(enc_dir).tokenizer, Tokenizer)
    b = Encoder(enc_dir).embed_texts(["Berlin: capital of Germany", "Tokyo"])
    assert a.tolist() == b.tolist()  # the same ids: the same vectors


def test_export_pieces_writes_the_model_and_rehashes_the_bundle(tmp_path, bundle_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(bundle_path, bundle)
    runner = CliRunner()
    with runner.isolation() as (_, err, *_):
        code = main(["export", "pieces", str(bundle / "encoder")])  # a WordLevel tokenizer
        msg = err.getvalue().decode()
    assert code == 1 and msg.startswith("Error: The tokenizer of") and "does not convert: a WordLevel model" in msg
    shutil.rmtree(bundle / "encoder")
    shutil.copytree(ENCODER, bundle / "encoder")
    (bundle / "encoder" / "tokenizer.model").unlink()
    cfg = json.loads((bundle / "encoder" / "config.json").read_text(encoding="utf-8"))
    (bundle / "encoder" / "config.json").write_text(json.dumps({k: v for k, v in cfg.items() if k != "pieces"}))
    res = runner.invoke(app, ["export", "pieces", str(bundle / "encoder")])
    assert res.exit_code == 0, res.output
    assert (bundle / "encoder" / "tokenizer.model").read_bytes() == (ENCODER / "tokenizer.model").read_bytes()
    assert json.loads((bundle / "encoder" / "config.json").read_text())["pieces"] == "tokenizer.model"
    assert runner.invoke(app, ["bundle", "verify", str(bundle)]).exit_code == 0
