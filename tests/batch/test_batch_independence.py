"""One answer per input: the same document gets the same links (QIDs and every score within
1e-4) alone, shuffled, in batches of 1, 7 and 32, in 1 and 2 worker processes, and after a
kill and --resume. Run on the embedded default bundle, whose int8 encoder is the part that
used to quantize activations per batch."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xned.config import default_bundle_path
from xned.runner import LinkOptions, link_stream

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = default_bundle_path()
pytestmark = pytest.mark.skipif(not (DEFAULT / "manifest.json").is_file(), reason="no default bundle")

# sentences written for this test: names the default bundle holds (countries, languages,
# companies, brands) in several scripts, of different lengths, so batches pad differently
SENTENCES = [
    ("es", "El presidente de Francia visitó Japón y habló con directivos de Starbucks y Toyota."),
    ("es", "México y Argentina firmaron un acuerdo comercial con Alemania."),
    ("en", "Nokia and Ericsson compete for contracts in Finland, Sweden and Norway."),
    ("en", "She moved from Portugal to Brazil and learned Portuguese slang."),
    ("de", "Die Firma Siemens baut Züge für Österreich und die Schweiz."),
    ("fr", "Le Canada et la Belgique parlent français, mais pas seulement."),
    ("it", "La Fiat ha aperto una fabbrica in Polonia e una in Serbia."),
    ("ja", "彼はトヨタで働き、毎朝スターバックスでコーヒーを飲む。"),
    ("zh", "他在德国学习了德语，然后去了法国。"),
    ("ru", "Он говорит по-русски и работал в Германии и Японии."),
    ("ar", "يتحدث العربية ويعيش في اليابان منذ سنوات."),
    ("eu", "Euskara Frantzia eta Espainia artean hitz egiten da."),
    ("en", "Samsung opened a store in Seoul; Apple answered with one in Tokyo."),
    ("nl", "Philips verkoopt lampen in België, Nederland en Duitsland."),
]


def _documents(n: int) -> list[dict]:
    rng = random.Random(7)
    docs = []
    for i in range(n):
        parts = rng.sample(SENTENCES, rng.randint(1, 4))
        lang = parts[0][0]
        docs.append({"id": f"d{i}", "lang": lang, "text": " ".join(t for _, t in parts)})
    return docs


def _key(results) -> dict[str, list[tuple]]:
    return {r.id: [(link.start, link.end, link.qid, link.score) for link in r.links] for r in results}


def _assert_same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for doc_id in a:
        la, lb = a[doc_id], b[doc_id]
        assert [x[:3] for x in la] == [x[:3] for x in lb], f"{what}: {doc_id} links differ"
        for x, y in zip(la, lb, strict=True):
            assert abs(x[3] - y[3]) <= 1e-4, f"{what}: {doc_id} {x} vs {y}"


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return _documents(48)


@pytest.fixture(scope="module")
def alone(docs) -> dict:
    opts = LinkOptions(bundle=str(DEFAULT), threads=2)
    return _key(link_stream(iter(docs), opts, batch_size=1))


@pytest.mark.parametrize("batch", [7, 32])
def test_batches_give_the_answer_of_each_document_alone(docs, alone, batch):
    opts = LinkOptions(bundle=str(DEFAULT), threads=2)
    got = _key(link_stream(iter(docs), opts, batch_size=batch))
    assert sum(len(v) for v in got.values()) > len(docs)  # documents do get links
    _assert_same(got, alone, f"batches of {batch}")


def test_shuffled_order_and_two_workers_give_the_same_answers(docs, alone):
    shuffled = docs[:]
    random.Random(3).shuffle(shuffled)
    opts = LinkOptions(bundle=str(DEFAULT), threads=1)
    _assert_same(_key(link_stream(iter(shuffled), opts, workers=2, batch_size=7)), alone, "2 workers, shuffled")


def test_single_text_call_matches_the_batch(alone, docs):
    from xned import Linker

    linker = Linker.load(DEFAULT, threads=1)
    for doc in docs[:6]:
        links = linker.link(doc["text"], lang=doc["lang"])
        got = {doc["id"]: [(x.start, x.end, x.qid, x.score) for x in links]}
        _assert_same(got, {doc["id"]: alone[doc["id"]]}, "link()")


def test_resumed_run_gives_the_uninterrupted_output(tmp_path, docs):
    src = tmp_path / "in.jsonl"
    many = [dict(d, id=f"{d['id']}-{k}") for k in range(12) for d in docs]  # ~580 documents
    src.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in many), encoding="utf-8")
    base = [sys.executable, "-m", "xned.cli.main", "link", "-i", str(src), "-f", "jsonl", "-q", "--threads", "1"]
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    subprocess.run([*base, "-o", str(ref)], cwd=ROOT, check=True, timeout=600, capture_output=True)
    partial = tmp_path / "out.jsonl.partial"
    p = subprocess.Popen([*base, "-o", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while p.poll() is None and time.monotonic() < deadline:
        try:
            if partial.read_bytes().count(b"\n") >= 40:
                break
        except OSError:
            pass
        time.sleep(0.02)
    if p.poll() is not None:
        pytest.skip("the run finished before it could be killed")
    p.send_signal(signal.SIGKILL)
    p.wait()
    subprocess.run([*base, "-o", str(out), "--resume"], cwd=ROOT, check=True, timeout=600, capture_output=True)

    def rows(path: Path) -> dict:
        recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return {r["id"]: [(m["start"], m["end"], m["qid"], m["score"]) for m in r["mentions"]] for r in recs}

    _assert_same(rows(out), rows(ref), "resumed")
