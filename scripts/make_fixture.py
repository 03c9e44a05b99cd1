"""Regenerate the tiny test bundle: ``python scripts/make_fixture.py [OUT]``.

It holds a tiny ONNX encoder (hashed word vectors, a context-mixing layer; 32 dims), a
word-level tokenizer, and a KB of a few dozen entities in English, Spanish and Japanese
with realistic ambiguity (Paris the city / Paris Hilton / Paris, Texas; Washington the
person / state / city; Georgia; Jordan; Amazon; Mercury). Needs ``onnx`` (the test
extra); no torch. Output is deterministic.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xned.engine.bundle import write_manifest  # noqa: E402
from xned.engine.encoder import Encoder  # noqa: E402
from xned.export.kb.builder import KBBuilder  # noqa: E402
from xned.export.kb.sources import read_counts_tsv, read_entity_tsv  # noqa: E402

DIM = 32

ENTITIES = """\
Q90	city	Paris	capital and largest city of France on the Seine	pop:2100000	es:París|ja:パリ|fr:Paris
Q47899	human	Paris Hilton	American media personality socialite and hotel heiress	pop:900	es:Paris Hilton|ja:パリス・ヒルトン|en~:Paris
Q830149	city	Paris, Texas	city in Lamar County Texas United States	pop:25000	en~:Paris|es:Paris (Texas)|ja:パリ (テキサス州)
Q167646	human	Paris (mythology)	Trojan prince in Greek mythology son of Priam who abducted Helen	pop:300	en~:Paris|es~:Paris|ja~:パリス
Q23	human	George Washington	first president of the United States and general of the Continental Army	pop:5000	en~:Washington|es:George Washington|es~:Washington|ja:ジョージ・ワシントン|ja~:ワシントン
Q1223	state	Washington	state in the Pacific Northwest of the United States with Seattle	pop:7700000	en~:Washington State|es:Washington|es~:Estado de Washington|ja:ワシントン州
Q61	city	Washington, D.C.	capital city of the United States where Congress and the White House are	pop:690000	en~:Washington|en~:Washington DC|es:Washington D. C.|es~:Washington|ja:ワシントンD.C.|ja~:ワシントン
Q230	country	Georgia	country in the Caucasus with capital Tbilisi	pop:3700000	es:Georgia|ja:ジョージア
Q1428	state	Georgia	state in the southeastern United States with capital Atlanta	pop:10700000	es:Georgia|es~:Estado de Georgia|ja:ジョージア州
Q810	country	Jordan	country in Western Asia with capital Amman	pop:11000000	es:Jordania|ja:ヨルダン
Q41421	human	Michael Jordan	American basketball player who played for the Chicago Bulls	pop:4000	en~:Jordan|es:Michael Jordan|ja:マイケル・ジョーダン
Q3884	company	Amazon	American online retail and cloud computing company	pop:9000	en~:Amazon.com|es:Amazon|ja:アマゾン
Q3783	river	Amazon River	river in South America flowing through the rainforest of Brazil	pop:6000	en~:Amazon|es:río Amazonas|es~:Amazonas|ja:アマゾン川
Q308	planet	Mercury	smallest planet of the Solar System closest to the Sun	pop:3000	es:Mercurio|ja:水星
Q925	element	mercury	chemical element with symbol Hg a liquid metal	pop:2500	en~:Mercury|es:mercurio|ja:水銀
Q15869	human	Freddie Mercury	British singer of the rock band Queen	pop:3500	en~:Mercury|es:Freddie Mercury|ja:フレディ・マーキュリー
Q1490	city	Tokyo	capital of Japan and the largest city of the Kanto region	pop:14000000	es:Tokio|ja:東京|ja~:東京都
Q17	country	Japan	island country in East Asia	pop:125000000	es:Japón|ja:日本|ja~:日本国
Q29	country	Spain	country in southwestern Europe with capital Madrid	pop:47000000	es:España|ja:スペイン
Q2807	city	Madrid	capital and largest city of Spain	pop:3300000	es:Madrid|ja:マドリード
Q8682	club	Real Madrid	Spanish football club based in Madrid	pop:5000	es:Real Madrid|ja:レアル・マドリード
Q1492	city	Barcelona	city in Catalonia Spain on the Mediterranean coast	pop:1600000	es:Barcelona|ja:バルセロナ
Q7156	club	FC Barcelona	Catalan football club based in Barcelona	pop:5000	en~:Barça|es:FC Barcelona|es~:Barça|ja:FCバルセロナ
Q64	city	Berlin	capital and largest city of Germany	pop:3700000	es:Berlín|ja:ベルリン
Q183	country	Germany	country in Central Europe	pop:83000000	es:Alemania|ja:ドイツ
Q60	city	New York City	most populous city in the United States	pop:8300000	en~:New York|en~:NYC|es:Nueva York|ja:ニューヨーク
Q1384	state	New York	state in the northeastern United States	pop:19000000	en~:New York State|es:Estado de Nueva York|es~:Nueva York|ja:ニューヨーク州
Q142	country	France	country in Western Europe	pop:68000000	es:Francia|ja:フランス
Q30	country	United States	country in North America	pop:330000000	en~:USA|en~:U.S.|es:Estados Unidos|es~:EE. UU.|ja:アメリカ合衆国|ja~:アメリカ
Q53268	company	Toyota	Japanese automobile manufacturer	pop:700	es:Toyota|ja:トヨタ自動車|ja~:トヨタ
Q41187	company	Sony	Japanese multinational electronics and entertainment company	pop:800	es:Sony|ja:ソニー
Q34600	city	Kyoto	city in Japan and former imperial capital	pop:1400000	es:Kioto|ja:京都|ja~:京都市
Q1297	city	Chicago	city in Illinois United States on Lake Michigan	pop:2700000	es:Chicago|ja:シカゴ
Q371938	band	Chicago	American rock band formed in 1967	pop:200	en~:Chicago|es~:Chicago
Q1017	city	Aachen	city in North Rhine-Westphalia Germany	pop:250000	es:Aquisgrán|ja:アーヘン|de:Aachen
Q1218	city	Jerusalem	city in the Middle East holy to three religions	pop:950000	es:Jerusalén|ja:エルサレム
Q597	city	Lisbon	capital of Portugal	pop:550000	es:Lisboa|ja:リスボン
Q3127	city	Zürich	largest city in Switzerland	pop:420000	es:Zúrich|ja:チューリッヒ|de:Zürich
"""

COUNTS = """\
en	Paris	Q90	900
en	Paris	Q47899	40
en	Paris	Q830149	20
en	Paris	Q167646	30
en	Washington	Q61	300
en	Washington	Q1223	250
en	Washington	Q23	200
en	Georgia	Q230	100
en	Georgia	Q1428	140
en	Jordan	Q810	120
en	Jordan	Q41421	90
en	Amazon	Q3884	200
en	Amazon	Q3783	110
en	Mercury	Q308	60
en	Mercury	Q925	50
en	Mercury	Q15869	40
en	Chicago	Q1297	500
en	Chicago	Q371938	15
"""

EXTRA_WORDS = """
the a an of in on at to and was is for with from by his her he she it they stayed visited
photographed party crossed delaware army river played basketball game team sang concert
hotel heiress president general city state country capital company online cloud retail
rainforest brazil planet solar orbit element metal thermometer singer band rock queen
el la los las en de y que con del por para un una fue es visitó ciudad capital presidente
río empresa equipo planeta cantó ganó partido jugó hotel heredera
"""


def words(text: str) -> list[str]:
    import unicodedata

    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")
    out = []
    for w in re.findall(r"\w+", text):
        if any("\u3040" <= ch <= "\u9fff" for ch in w):
            out.extend(ch for ch in w)
        else:
            out.append(w)
    return out


def word_vector(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def make_tokenizer(vocab: list[str], path: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    path.write_text(tok.to_str(pretty=False), encoding="utf-8")


def make_onnx(vocab: list[str], path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    emb = np.stack([np.zeros(DIM, np.float32) if i < 4 else word_vector(w) for i, w in enumerate(vocab)])
    types = np.random.default_rng(7).standard_normal((2, DIM)).astype(np.float32) * 0.01
    mix = (np.eye(DIM) * 0.5).astype(np.float32)
    inits = [
        numpy_helper.from_array(emb, "word_emb"),
        numpy_helper.from_array(types, "type_emb"),
        numpy_helper.from_array(mix, "mix"),
        numpy_helper.from_array(np.array([-1], np.int64), "axis_last"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_seq"),
    ]
    nodes = [
        helper.make_node("Gather", ["word_emb", "input_ids"], ["w"]),
        helper.make_node("Gather", ["type_emb", "token_type_ids"], ["t"]),
        helper.make_node("Add", ["w", "t"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axis_last"], ["mask3"]),
        helper.make_node("Mul", ["e", "mask3"], ["em"]),
        helper.make_node("ReduceSum", ["em", "axis_seq"], ["s"], keepdims=1),
        helper.make_node("ReduceSum", ["mask3", "axis_seq"], ["n"], keepdims=1),
        helper.make_node("Div", ["s", "n"], ["ctx"]),
        helper.make_node("MatMul", ["ctx", "mix"], ["ctxm"]),
        helper.make_node("Add", ["e", "ctxm"], ["h"]),
        helper.make_node("Tanh", ["h"], ["last_hidden_state"]),
    ]
    dyn = ["batch", "seq"]
    graph = helper.make_graph(
        nodes,
        "xned_tiny_encoder",
        [
            helper.make_tensor_value_info(n, TensorProto.INT64, dyn)
            for n in ("input_ids", "attention_mask", "token_type_ids")
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [*dyn, DIM])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="xned-fixture")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def build(out: Path) -> None:
    corpus = ENTITIES + COUNTS + EXTRA_WORDS
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + sorted(set(words(corpus)))
    tmp = Path(tempfile.mkdtemp(prefix="xned-fixture-"))
    try:
        enc_dir = tmp / "encoder"
        enc_dir.mkdir()
        make_tokenizer(vocab, enc_dir / "tokenizer.json")
        make_onnx(vocab, enc_dir / "model.onnx")
        (enc_dir / "config.json").write_text(
            '{\n  "dim": 32,\n  "max_length": 64,\n  "mention_weight": 0.5,\n  "model": "model.onnx",\n'
            '  "passage_prefix": "",\n  "pooling": "mention",\n  "query_prefix": "",\n'
            '  "tokenizer": "tokenizer.json"\n}\n',
            encoding="utf-8",
        )
        (tmp / "sources").mkdir()
        ent_tsv = tmp / "sources" / "entities.tsv"
        ent_tsv.write_text(ENTITIES, encoding="utf-8")
        cnt_tsv = tmp / "sources" / "anchors.counts.tsv"
        cnt_tsv.write_text(COUNTS, encoding="utf-8")
        b = KBBuilder()  # the default options: 30 candidates per alias
        read_entity_tsv(ent_tsv, b)
        read_counts_tsv(cnt_tsv, b)
        encoder = Encoder(enc_dir, threads=1)

        def embed(rows):
            return encoder.embed_texts([f"{r.label}: {r.description}" for r in rows], "passage")

        b.write(
            tmp / "kb",
            {"sources": [{"path": "entities.tsv"}, {"path": "anchors.counts.tsv"}]},
            embed,
        )
        shutil.rmtree(tmp / "sources")
        write_manifest(
            tmp,
            {
                "name": "xned-tiny-fixture",
                "created_by": "xned scripts/make_fixture.py",
                "languages": ["de", "en", "es", "fr", "ja"],
                "provenance": {"encoder": "hashed word vectors (tests only)", "kb": "hand-written"},
            },
        )
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(tmp), str(out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "fixtures" / "tiny_bundle"
    build(target)
    print(f"wrote {target}")
