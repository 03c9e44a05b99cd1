"""Stem keys (``xned.engine.stems``): inflected names found through the Snowball stemmers,
written with the KB for the default languages and by ``xned kb index --stems``."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from xned.cli.main import main
from xned.engine.linker import Linker
from xned.engine.stems import STEM_LANGS
from xned.errors import BundleError
from xned.export.bundle_ops import build_kb_into_bundle, index_bundle
from xned.export.kb.incremental import add, compact
from xned.export.kb.stems import parse_stem_langs
from xned.types import Document, Mention

SOURCE = """#qid\ttype\ten_label\ten_description\tpopularity\tlabels
Q30\tcountry\tUnited States\tcountry in North America\tpop:900000\tde:Vereinigte Staaten|sv:Förenta staterna
Q34\tcountry\tSweden\tcountry in Northern Europe\tpop:500000\tsv:Sverige|de:Schweden
Q11036\tband\tRolling Stone\tmagazine\tpop:1000\t
Q1065\torganization\tUnited Nations\tintergovernmental organization\tpop:5000\tfr:Nations unies
Q999\tthing\tVereinigten Staaten Verein\ta club\tpop:10\tde:Vereinigten Staaten
"""
ADDED = """#qid\ttype\ten_label\ten_description\tpopularity\tlabels
Q1754\tcity\tStockholm\tcapital of Sweden\tpop:1000\tsv:Stockholm|en:Stockholm Syndrome Band
"""


@pytest.fixture()
def bundle(tmp_path, bundle_path):
    src = tmp_path / "src.tsv"
    src.write_text(SOURCE, encoding="utf-8")
    b = tmp_path / "b"
    b.mkdir()
    shutil.copytree(bundle_path / "encoder", b / "encoder")
    build_kb_into_bundle([src], b)
    return b


def qids(linker, text, lang):
    return [q for q, _, _ in linker.lookup(text, lang, 10)]


def test_default_languages_get_stem_keys_and_exact_keys_win(bundle):
    aliases = bundle / "kb" / "aliases"
    assert json.loads((aliases / "de" / "stem.json").read_text()) == {"algorithm": "german"}
    assert (aliases / "sv" / "stem.json").is_file() and (aliases / "en" / "stem.json").is_file()
    assert not (aliases / "fr" / "stem.json").exists() and "fr" not in STEM_LANGS
    linker = Linker.load(bundle, variant="prior", use_corrections=False)
    # "Sweden's" (genitive) and "the United States" (dative plural): no alias holds them
    assert qids(linker, "Sveriges", "sv") == ["Q34"]
    assert qids(linker, "Vereinigten Staaten", "de") == ["Q999"]  # the exact alias wins ...
    assert set(qids(linker, "Vereinigter Staaten", "de")) == {"Q30", "Q999"}  # stem key "vereinigt staat"
    assert qids(linker, "Rolling Stones", "en") == ["Q11036"]
    assert qids(linker, "Nation unie", "fr") == []  # French is not stemmed by default


def test_stem_keys_serve_given_spans_not_detected_ones(bundle):
    linker = Linker.load(bundle, use_corrections=False, dense_k=0)  # alias candidates only
    assert linker.kb.lookup_all("sv", ["sveriges"], stems=False)[0][0].size == 0
    assert linker.kb.lookup_all("sv", ["sveriges"])[0][0].size == 1
    text = "Sveriges regering"
    (given,) = linker.link_batch([{"id": "a", "lang": "sv", "text": text, "mentions": [(0, 8)]}], candidates=True)
    assert [(lk.text, [c.qid for c in lk.candidates]) for lk in given.links] == [("Sveriges", ["Q34"])]
    # the same span as a detected one (the linker's candidate step for detection output)
    doc, span = Document(text, "sv"), [Mention(0, 8, "Sveriges")]
    assert linker.stage.candidates(doc, span, given=False)[0].ents.size == 0
    assert linker.stage.candidates(doc, span, given=True)[0].ents.tolist() == [linker.kb.index("Q34")]


def test_kb_index_stems_chosen_languages_kept_by_add_and_compact(tmp_path, bundle):
    with pytest.raises(Exception, match="No Snowball stemmer for xx"):
        parse_stem_langs("de,xx")
    info = index_bundle(bundle, dense=False, stems=parse_stem_langs("en,fr"))
    assert set(info["stem_keys"]["languages"]) == {"en", "fr"}
    aliases = bundle / "kb" / "aliases"
    assert not (aliases / "sv" / "stem.json").exists()  # not chosen: removed
    linker = Linker.load(bundle, variant="prior", use_corrections=False, verify=True)  # manifest updated
    assert qids(linker, "Nation unie", "fr") == ["Q1065"]
    assert qids(linker, "Sveriges", "sv") == []

    added = tmp_path / "added.tsv"
    added.write_text(ADDED, encoding="utf-8")
    add(bundle, [added])
    overlay = bundle / "kb" / "overlay" / "aliases"
    assert (overlay / "en" / "stem.json").is_file() and not (overlay / "sv" / "stem.json").exists()
    assert not (overlay / "de").exists()
    linker = Linker.load(bundle, variant="prior", use_corrections=False)
    assert qids(linker, "Stockholm Syndrome Bands", "en") == ["Q1754"]  # an overlay key, by its stem
    compact(bundle)
    assert (aliases / "fr" / "stem.json").is_file() and not (aliases / "sv" / "stem.json").exists()
    linker = Linker.load(bundle, variant="prior", use_corrections=False, verify=True)
    assert qids(linker, "Stockholm Syndrome Bands", "en") == ["Q1754"]


def test_a_broken_stem_config_is_a_bundle_error(bundle):
    (bundle / "kb" / "aliases" / "de" / "stem.json").write_text('{"algorithm": "klingon"}', encoding="utf-8")
    linker = Linker.load(bundle, variant="prior", use_corrections=False)
    with pytest.raises(BundleError, match="stem.json.*klingon"):
        linker.lookup("Schwedens", "de", 5)


def cli(*args: str) -> tuple[int, str]:
    with CliRunner().isolation() as (_, err, *_):
        code = main(list(args))
        return code, err.getvalue().decode()


def test_cli_stem_options(bundle):
    code, err = cli("kb", "index", "-b", str(bundle), "--no-dense", "--stems", "--stem-langs", "de,zz")
    assert code == 1 and "Error: No Snowball stemmer for zz" in err
    code, err = cli("kb", "index", "-b", str(bundle), "--no-dense", "--stem-langs", "de")
    assert code == 1 and "--stem-langs goes with --stems" in err
    code, err = cli("kb", "index", "-b", str(bundle), "--no-dense", "--stems", "--stem-langs", "none")
    assert code == 0, err
    assert "Stem keys of 0 tables" in err
    assert not list((bundle / "kb" / "aliases").glob("*/stem.json"))


def test_detected_mentions_of_a_given_spans_run_get_no_stem_keys(bundle, monkeypatch):
    """``link`` runs with ``given_spans=True`` by default; a document without spans gets its
    mentions detected, and those must not be looked up by stem keys (on the evaluation KB a
    detected "Феррари" found Ferrara that way)."""
    linker = Linker.load(bundle, use_corrections=False, dense_k=0)
    text = "Sveriges regering"
    monkeypatch.setattr(linker.finder, "rules", lambda doc: [Mention(0, 8, "Sveriges")])
    ready, failed = linker.stage.prepare([{"id": "a", "lang": "sv", "text": text}], "sv", True, False, "rules")
    assert not failed and ready[0].sets[0][0].ents.size == 0
    given, _ = linker.stage.prepare(
        [{"id": "a", "lang": "sv", "text": text, "mentions": [(0, 8)]}], "sv", True, False, "rules"
    )
    assert given[0].sets[0][0].ents.tolist() == [linker.kb.index("Q34")]


def test_a_stem_match_is_marked_for_the_scorer(bundle):
    """Candidates found only through the stem key carry the ``stem`` feature (a weaker match
    than an alias, which the calibration can weigh); an alias as written never does."""
    from xned.engine.scoring import FEATURES, Scorer

    linker = Linker.load(bundle, use_corrections=False, dense_k=0)
    kb = linker.kb
    assert kb.stem_only("sv", "sveriges") and not kb.stem_only("sv", "sverige")
    assert not kb.stem_only("de", "vereinigten staaten")  # an alias as written
    assert not kb.stem_only("fr", "nation unie")  # nothing found at all
    doc = Document("Sveriges regering och Sverige", "sv")
    spans = [Mention(0, 8, "Sveriges"), Mention(22, 29, "Sverige")]
    stemmed, plain = linker.stage.candidates(doc, spans, given=True)
    assert stemmed.stem and not plain.stem
    assert not linker.stage.candidates(doc, spans[:1], given=False)[0].stem  # detected: no stem keys
    col = FEATURES.index("stem")
    an = linker.analyze([{"id": "a", "lang": "sv", "text": doc.text, "mentions": [(0, 8), (22, 29)]}])[0]
    m_stem, m_plain = (f.matrix(Scorer()) for f in an.mentions)
    assert m_stem[:, col].tolist() == [1.0] and m_plain[:, col].tolist() == [0.0]
    # a weight on it lowers the confidence of the stem match only
    base = Scorer()
    low = Scorer(weights={**base.weights, "stem": -3.0})
    assert low.score(m_stem)[1][0] < base.score(m_stem)[1][0]
    assert low.score(m_plain)[1][0] == base.score(m_plain)[1][0]
