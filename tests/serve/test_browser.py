"""The web page in a real browser: Debian's headless chromium driven by Selenium against a
server on a loopback port (skipped only where no browser is installed; CI installs one)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from xned.serve.app import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="no chromium + chromedriver (apt-get install chromium chromium-driver)"
)
TEXT = "The capital Paris lies on the Seine in France. Madrid y Barcelona están en España. 東京は日本の首都です。"


@contextmanager
def _serving(linker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(linker), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start in 20 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    thread.join(10)


def _link_file(browser, url: str, path: Path) -> WebDriverWait:
    """Open the page, read ``path`` (one document) into it and link it; the page's waiter."""
    browser.get(url)
    wait = WebDriverWait(browser, 30)
    wait.until(lambda d: "entities" in d.find_element(By.ID, "bundle").text)
    browser.find_element(By.ID, "file").send_keys(str(path))
    wait.until(lambda d: "1 document(s) read" in d.find_element(By.ID, "status").text)
    browser.find_element(By.ID, "link").click()
    return wait


@pytest.fixture(scope="module")
def server(linker):
    with _serving(linker) as url:
        yield url


@pytest.fixture()
def browser(tmp_path):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,900"):
        opts.add_argument(arg)
    opts.add_experimental_option(
        "prefs", {"download.default_directory": str(tmp_path), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def test_page_links_highlights_explains_and_downloads(server, browser, tmp_path):
    wait = WebDriverWait(browser, 30)
    browser.get(server)
    wait.until(lambda d: "entities" in d.find_element(By.ID, "bundle").text)  # /info answered
    browser.find_element(By.ID, "text").send_keys(TEXT)
    browser.find_element(By.ID, "link").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#results .mention")))

    linked = {
        a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#results a.mention.linked")
    }
    expected = {
        "Paris": "Q90",
        "France": "Q142",
        "Madrid": "Q2807",
        "Barcelona": "Q1492",
        "東京": "Q1490",
        "日本": "Q17",
    }
    for name, qid in expected.items():
        assert linked.get(name) == f"https://www.wikidata.org/wiki/{qid}", (name, linked)
    assert "7 mention(s), 7 linked" in browser.find_element(By.ID, "status").text

    # hover: the explanation of the decision
    paris = next(a for a in browser.find_elements(By.CSS_SELECTOR, "a.mention") if a.text == "Paris")
    ActionChains(browser).move_to_element(paris).perform()
    details = browser.find_element(By.ID, "details")
    wait.until(lambda d: "Q90" in details.text)
    assert "Seine" in details.find_element(By.CLASS_NAME, "desc").text
    rows = details.find_elements(By.CSS_SELECTOR, "table.cands tr")
    assert len(rows) >= 3  # header + Paris and its rivals (Paris, Texas; Paris Hilton ...)
    assert "similarity" in rows[0].text and "Paris, Texas" in details.text
    if os.environ.get("XNED_SCREENSHOT"):  # CI keeps this view for the documentation
        browser.save_screenshot(os.environ["XNED_SCREENSHOT"])

    # keyboard: tabbing onto a name shows it too
    tokyo = next(a for a in browser.find_elements(By.CSS_SELECTOR, "a.mention") if a.text == "東京")
    browser.execute_script("arguments[0].focus()", tokyo)
    wait.until(lambda d: "Q1490" in details.text)

    # download JSONL: the same records the API returns
    browser.find_element(By.ID, "dl-jsonl").click()
    target = tmp_path / "xned-links.jsonl"
    deadline = time.monotonic() + 20
    while not target.exists():
        assert time.monotonic() < deadline, f"no download in {list(tmp_path.iterdir())}"
        time.sleep(0.1)
    time.sleep(0.3)
    (doc,) = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert doc["text"] == TEXT
    assert {m["text"]: m["qid"] for m in doc["mentions"] if m["qid"]} == {**expected, "España": "Q29"}


def test_page_shows_a_request_error(server, browser):
    wait = WebDriverWait(browser, 30)
    browser.get(server)
    wait.until(lambda d: "entities" in d.find_element(By.ID, "bundle").text)
    browser.find_element(By.ID, "lang").send_keys("klingon")
    browser.find_element(By.ID, "text").send_keys("Paris")
    browser.find_element(By.ID, "link").click()
    wait.until(lambda d: "klingon" in d.find_element(By.ID, "results").text + d.find_element(By.ID, "status").text)


def test_an_analyst_corrects_a_link_on_the_page(browser, bundle_path, tmp_path):
    from xned import Linker

    with _serving(Linker.load(bundle_path, threads=1, state=tmp_path / "state")) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 30)
        wait.until(lambda d: "entities" in d.find_element(By.ID, "bundle").text)
        browser.find_element(By.ID, "text").send_keys("The capital Paris lies on the Seine in France.")
        browser.find_element(By.ID, "link").click()
        paris = wait.until(
            lambda d: next((a for a in d.find_elements(By.CSS_SELECTOR, "a.mention") if a.text == "Paris"), None)
        )
        assert paris.get_attribute("href").endswith("/Q90")
        paris.click()
        details = browser.find_element(By.ID, "details")
        wait.until(lambda d: "Paris, Texas" in details.text)
        details.find_element(By.CSS_SELECTOR, "button.teach[data-qid='Q830149']").click()
        wait.until(lambda d: "Taught" in d.find_element(By.ID, "status").text)
        fixed = wait.until(
            lambda d: next(
                (a for a in d.find_elements(By.CSS_SELECTOR, "a.mention.corrected") if a.text == "Paris"), None
            )
        )
        assert fixed.get_attribute("href").endswith("/Q830149")
        assert "1 correction(s)" in browser.find_element(By.ID, "status").text


def test_an_analyst_merges_two_unknown_entities_on_the_page(browser, bundle_path, tmp_path):
    import json

    from xned import Linker

    doc = {"text": "Amaia Etxeberria met Mikel Ugarte.", "lang": "en", "mentions": [[0, 16], [21, 33]]}
    (tmp_path / "docs.jsonl").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    with _serving(Linker.load(bundle_path, threads=1, state=tmp_path / "state", nil_ids=True)) as url:
        wait = _link_file(browser, url, tmp_path / "docs.jsonl")

        def spans(d):
            found = {s.text: s for s in d.find_elements(By.CSS_SELECTOR, "#results span.mention.nil")}
            return found if len(found) == 2 else None

        amaia, mikel = (wait.until(spans)[k] for k in ("Amaia Etxeberria", "Mikel Ugarte"))
        ids = [s.get_attribute("title").split()[0] for s in (amaia, mikel)]
        assert all(i.startswith("NIL:") for i in ids) and ids[0] != ids[1]
        amaia.click()
        details = browser.find_element(By.ID, "details")
        wait.until(lambda d: "Unknown entity " + ids[0] in details.text)
        details.find_element(By.ID, "nil-other").send_keys(ids[1])
        details.find_element(By.CSS_SELECTOR, "button.nil-merge").click()
        wait.until(lambda d: "Merged " + ids[1] + " into " + ids[0] in d.find_element(By.ID, "status").text)
        after = wait.until(spans)
        assert {after[k].get_attribute("title").split()[0] for k in after} == {ids[0]}


def test_an_analyst_adds_an_unknown_entity_to_the_bundle_on_the_page(browser, built_bundle, tmp_path):
    import json

    from xned import Linker

    bundle = built_bundle
    doc = {"text": "Amaia Etxeberria met Mikel Ugarte.", "lang": "en", "mentions": [[0, 16], [21, 33]]}
    (tmp_path / "docs.jsonl").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    with _serving(Linker.load(bundle, threads=1, state=tmp_path / "state", nil_ids=True)) as url:
        wait = _link_file(browser, url, tmp_path / "docs.jsonl")
        amaia = wait.until(
            lambda d: next(
                (
                    s
                    for s in d.find_elements(By.CSS_SELECTOR, "#results span.mention.nil")
                    if s.text == "Amaia Etxeberria"
                ),
                None,
            )
        )
        amaia.click()
        details = browser.find_element(By.ID, "details")
        wait.until(lambda d: "Unknown entity NIL:" in details.text)
        assert details.find_element(By.ID, "nil-label").get_attribute("value") == "Amaia Etxeberria"
        details.find_element(By.ID, "nil-desc").send_keys("harbour engineer")
        details.find_element(By.CSS_SELECTOR, "button.nil-promote").click()
        wait.until(lambda d: "Added Amaia Etxeberria as Q9" in d.find_element(By.ID, "status").text)
        linked = wait.until(
            lambda d: next(
                (
                    s
                    for s in d.find_elements(By.CSS_SELECTOR, "#results a.mention.linked")
                    if s.text == "Amaia Etxeberria"
                ),
                None,
            )
        )
        assert linked.get_attribute("title").startswith("Q9")
