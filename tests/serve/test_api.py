"""The HTTP API of ``xned serve`` (Starlette's test client; no socket)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
from starlette.testclient import TestClient  # noqa: E402

from xned.runner import LinkOptions  # noqa: E402
from xned.serve import is_loopback  # noqa: E402
from xned.serve.app import Limits, create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(linker):
    return TestClient(create_app(linker, limits=Limits(max_body_bytes=20_000, max_documents=3, max_doc_chars=500)))


def test_link_one_text_with_candidates(client):
    r = client.post(
        "/link", json={"text": "The capital Paris lies on the Seine in France.", "lang": "en", "candidates": True}
    )
    assert r.status_code == 200
    (doc,) = r.json()["documents"]
    by_text = {m["text"]: m for m in doc["mentions"]}
    assert by_text["Paris"]["qid"] == "Q90" and by_text["France"]["qid"] == "Q142"
    paris = by_text["Paris"]
    assert paris["label"] == "Paris" and "Seine" in paris["description"]
    assert {c["qid"] for c in paris["candidates"]} >= {"Q90", "Q830149"}
    assert set(paris["candidates"][0]) == {"qid", "label", "score", "prior", "similarity", "expert"}


def test_documents_keep_order_ids_and_per_document_errors(client):
    docs = [
        {"id": "a", "text": "Madrid y Barcelona.", "lang": "es"},
        {"id": "b", "text": "Paris", "lang": "xx-nope"},
        {"id": "c", "text": "Tokyo is big.", "lang": "en", "mentions": [[0, 5]]},
    ]
    r = client.post("/link", json={"documents": docs})
    assert r.status_code == 200
    out = r.json()["documents"]
    assert [d["id"] for d in out] == ["a", "b", "c"]
    assert {m["qid"] for m in out[0]["mentions"]} == {"Q2807", "Q1492"}
    assert "xx" in out[1]["error"] and not out[1]["mentions"]
    assert [(m["start"], m["end"], m["qid"]) for m in out[2]["mentions"]] == [(0, 5, "Q1490")]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"text": "Paris", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400, "nested too deeply"),
        (json.dumps([1, 2]).encode(), 422, "JSON object"),
        (json.dumps({"texts": "x"}).encode(), 422, '"text"'),
        (json.dumps({"documents": "x"}).encode(), 422, '"documents" must be a list'),
        (json.dumps({"text": "Paris", "lang": 5}).encode(), 422, '"lang"'),
        (json.dumps({"text": "Paris", "candidates": "yes"}).encode(), 422, '"candidates"'),
        (json.dumps({"text": "Paris", "mentions": [[0, 50]]}).encode(), 400, "out of range"),
        (json.dumps({"text": "Paris", "lang": "klingon"}).encode(), 400, "klingon"),
        (json.dumps({"documents": [{"text": "a"}] * 4}).encode(), 413, "at most 3"),
        (json.dumps({"text": "a" * 600}).encode(), 413, "at most 500"),
        (json.dumps({"text": "a " * 20_000}).encode(), 413, "bytes"),
    ],
)
def test_bad_requests_get_clear_json_errors(client, body, status, words):
    r = client.post("/link", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_info_health_openapi_and_the_page(client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    assert info["entities"] > 30 and "es" in info["languages"] and info["limits"]["max_documents"] == 3
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/link" in spec["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "http://" not in page.text.replace("https://www.wikidata.org/wiki/", "")  # nothing loaded from elsewhere
    assert client.get("/link").status_code == 405


def test_token_is_required_when_set(linker):
    c = TestClient(create_app(linker, token="s3cret"))
    assert c.get("/health").status_code == 200  # liveness stays open
    assert c.post("/link", json={"text": "Paris"}).status_code == 401
    assert c.post("/link", json={"text": "Paris"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/info").status_code == 401
    text = "The capital Paris lies on the Seine in France."
    ok = c.post("/link", json={"text": text, "lang": "en"}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json()["documents"][0]["mentions"][0]["qid"] == "Q90"


def test_busy_server_says_so(linker):
    import threading

    gate = threading.Event()

    class Slow:
        def info(self):
            return linker.info()

        def link_stream(self, docs, **kw):
            gate.wait(5)
            return linker.link_stream(docs, **kw)

    app = create_app(Slow(), limits=Limits(concurrency=1, timeout_s=0.5))
    with TestClient(app) as c:
        threading.Timer(1.0, gate.set).start()
        r = c.post("/link", json={"text": "Paris", "lang": "en"})
        assert r.status_code == 504 and "longer than 0.5 s" in r.json()["error"]
    gate.set()


def test_a_timed_out_request_stops_its_work_and_frees_its_slot(linker):
    import threading
    import time

    linked = []

    class Slow:
        root = linker.root

        def info(self):
            return linker.info()

        def link_stream(self, docs, **kw):
            for d in docs:
                time.sleep(0.1)
                linked.append(d.get("id"))
                yield from linker.link_stream([d], **kw)

    app = create_app(Slow(), limits=Limits(concurrency=1, timeout_s=0.3, max_documents=100))
    docs = [{"id": str(i), "text": "Paris", "lang": "en"} for i in range(60)]
    with TestClient(app) as c:
        r = c.post("/link", json={"documents": docs})
        assert r.status_code == 504
        stopped_at = len(linked)
        time.sleep(0.5)
        assert len(linked) == stopped_at <= 20  # nothing runs on after the 504 (was: all 60)
        t0 = time.monotonic()
        r = c.post("/link", json={"text": "Paris", "lang": "en"})  # the slot is free again
        assert r.status_code == 200 and time.monotonic() - t0 < 2.0  # not the 6 s the rest would take
    assert threading.active_count() < 50


def test_errors_do_not_reveal_the_servers_paths(linker, bundle_path):
    c = TestClient(create_app(linker))
    r = c.post("/link", json={"text": "Paris", "lang": "sw"})
    assert r.status_code == 400
    for path in {str(bundle_path), str(bundle_path.resolve())}:
        assert path not in r.text
    assert c.get("/").headers["content-security-policy"].endswith("frame-ancestors 'none'")


def test_schema_needs_the_token_and_the_static_page_does_not(linker):
    c = TestClient(create_app(linker, token="s3cret"))
    assert c.get("/openapi.json").status_code == 401
    assert c.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    page = c.get("/")
    assert page.status_code == 200 and 'id="token"' in page.text and "Q90" not in page.text


def test_non_loopback_bind_needs_a_token():
    from xned.errors import InputError
    from xned.serve import serve

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(InputError, match="token"):
        serve(LinkOptions(threads=1), host="0.0.0.0", port=8000, workers=1, token=None, limits=Limits())


def test_teach_then_link_uses_the_correction(bundle_path, tmp_path):
    from xned import Linker

    client = TestClient(create_app(Linker.load(bundle_path, threads=1, state=tmp_path / "state")))
    text = "The capital Paris lies on the Seine in France."
    r = client.post("/teach", json={"text": text, "lang": "en", "start": 12, "end": 17, "qid": "Q830149"})
    assert r.status_code == 200, r.text
    assert r.json()["corrections"] == 1
    assert [(t["mention"], t["qid"]) for t in r.json()["taught"]] == [("Paris", "Q830149")]
    doc = client.post("/link", json={"text": "Paris lies on the Seine.", "lang": "en"}).json()["documents"][0]
    paris = next(m for m in doc["mentions"] if m["text"] == "Paris")
    assert (paris["qid"], paris["corrected"]) == ("Q830149", True)
    r = client.post("/teach", json={"text": text, "lang": "en", "start": 12, "end": 17, "qid": "Q1"})
    assert r.status_code == 400 and "'Q1' is not an entity of this bundle" in r.json()["error"]
    r = client.post("/teach", json={"text": text, "lang": "en", "start": 12, "qid": "Q90"})
    assert r.status_code == 400 and "two integers" in r.json()["error"]


def test_nil_ids_in_responses_and_merge_over_http(bundle_path, tmp_path, client):
    from xned.engine.linker import Linker

    nil = TestClient(create_app(Linker.load(bundle_path, state=tmp_path / "state", nil_ids=True)))
    r = nil.post(
        "/link",
        json={
            "documents": [{"text": "Amaia Etxeberria met Mikel Ugarte.", "lang": "en", "mentions": [[0, 16], [21, 33]]}]
        },
    )
    assert r.status_code == 200
    a, b = (m["nil_id"] for m in r.json()["documents"][0]["mentions"])
    assert a.startswith("NIL:") and b.startswith("NIL:") and a != b
    r = nil.post("/nil/merge", json={"keep": a, "other": b})
    assert r.status_code == 200 and r.json() == {"nil_id": a, "merged": b}
    assert nil.post("/nil/merge", json={"keep": a, "other": "NIL:0000000000"}).status_code == 404
    assert nil.post("/nil/merge", json={"keep": a}).status_code == 422
    assert client.post("/nil/merge", json={"keep": a, "other": b}).status_code == 409  # no --nil-ids


def test_promote_over_http_links_the_new_entity_in_every_later_request(built_bundle, tmp_path):
    from xned.engine.linker import Linker
    from xned.export.kb.incremental import add

    bundle, state = built_bundle, tmp_path / "state"
    api = TestClient(create_app(Linker.load(bundle, state=state, nil_ids=True)))
    doc = {
        "text": "Amaia Etxeberria opened the harbour; Etxeberria spoke.",
        "lang": "en",
        "mentions": [[0, 16], [37, 47]],
    }
    (nil_id,) = {m["nil_id"] for m in api.post("/link", json={"documents": [doc]}).json()["documents"][0]["mentions"]}
    assert api.post("/nil/promote", json={"nil_id": nil_id}).status_code == 422
    assert api.post("/nil/promote", json={"nil_id": "NIL:0000000000", "label": "x"}).status_code == 400
    r = api.post("/nil/promote", json={"nil_id": nil_id, "label": "Amaia Etxeberria", "description": "engineer"})
    assert r.status_code == 200, r.text
    qid = r.json()["qid"]
    assert qid.startswith("Q9") and r.json()["names"][0] == "Amaia Etxeberria"
    mentions = api.post("/link", json={"documents": [doc]}).json()["documents"][0]["mentions"]
    assert [(m["text"], m["qid"], m.get("description")) for m in mentions][0] == ("Amaia Etxeberria", qid, "engineer")
    # a change made outside this server (xned kb add by another process) is picked up too
    more = tmp_path / "more.tsv"
    more.write_text(
        "#qid\ttype\ten_label\ten_description\tpopularity\tlabels\nQ999000002\tcity\tZubieta\ta village\tpop:1\t\n"
    )
    add(bundle, [more])
    r = api.post("/link", json={"text": "Zubieta is quiet.", "lang": "en", "mentions": [[0, 7]]})
    assert r.json()["documents"][0]["mentions"][0]["qid"] == "Q999000002"
