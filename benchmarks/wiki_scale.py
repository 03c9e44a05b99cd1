"""Word experts at scale: a synthetic Wikipedia XML dump of N articles, trained on with
``xned experts train`` in a child process (wall time, peak RSS, documents/s), projected to
the full English Wikipedia.

    python benchmarks/wiki_scale.py --bundle B --pages 100000 --work build/bench-wiki [--max-per-entity 64]

The dump follows the pages-articles layout (``<mediawiki>``, ``<siteinfo><dbname>``, one
``<page>`` per article or redirect, wikitext in ``<revision><text>``). What is taken from
the real enwiki sample (``../shared/data/dumps/wiki_xml_dump_samples``) and what is assumed:

- **link density**: 4.9 links per 100 words of plain text (measured on the 106 articles of
  the enwiki sample);
- **article length**: log-normal words per article with the sample's spread (sd of log
  words 1.26) and median ``--median-words`` (default 400: the sample is the dump's first,
  long articles, median 3,366 words; English Wikipedia's mean is about 700);
- **redirects**: 1.6 per article (English Wikipedia: about 11M redirects for 6.8M articles;
  the sample has 0.9); all of them come first, so their count does not grow with ``--pages``
  beyond ``--redirects``;
- **words**: drawn from the plain text of the sample (real English word frequencies) when
  it is present, else from a fixed list;
- **links**: to the bundle's entities, as ``[[Title|anchor]]`` with an alias of the entity as
  the anchor; the target follows Zipf's law (the r-th most linked entity gets 1/r of the
  links of the first: assumed, the usual shape of Wikipedia's in-link counts); an entity
  with an ambiguous alias half of the time (the experts' own data); a titles TSV maps the
  titles to QIDs (``--titles`` of ``experts train``).
"""

from __future__ import annotations

import argparse
import bisect
import bz2
import itertools
import json
import math
import os
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "dumps" / "wiki_xml_dump_samples"
LINKS_PER_WORD = 0.049
LOG_WORDS_SD = 1.26
REDIRECTS_PER_ARTICLE = 1.6
#: words for a machine without the sample (space-separated)
FALLBACK_TEXT = (
    "the of and in to a was is for on as with by he that at from his it an were are which this be or had "
    "first also new after their its has one two city war year river team born school music film party"
)
ENWIKI_ARTICLES = 6_800_000


def sample_words(limit: int = 200_000) -> list[str]:
    """Words of the enwiki sample's plain text, in text order (so common words repeat)."""
    paths = sorted(SAMPLE.glob("enwiki-latest-pages-articles*.bz2"))
    if not paths:
        return FALLBACK_TEXT.split()
    sys.path.insert(0, str(ROOT))
    from xned.export.wikimedia import iter_pages, plain_text_with_links

    words: list[str] = []
    for page in iter_pages(paths[0]):
        if page.ns == "0" and not page.redirect:
            words.extend(w for w in plain_text_with_links(page.text, 10**9)[0].split() if w.isalpha())
            if len(words) >= limit:
                break
    return words or FALLBACK_TEXT.split()


def make_wiki_dump(
    path: Path,
    pages: int,
    targets: list[tuple[str, list[str], bool]],
    *,
    words: list[str] | None = None,
    median_words: int = 400,
    redirects: int | None = None,
    seed: int = 0,
) -> dict[str, int]:
    """Write a synthetic pages-articles dump of ``pages`` articles to ``path`` (``.bz2``:
    compressed). ``targets``: (title, anchors, ambiguous) per linkable entity. Returns counts."""
    rng = random.Random(seed)
    words = words or FALLBACK_TEXT.split()
    targets = list(targets)
    amb = [t for t in targets if t[2]] or targets
    # link targets by Zipf's law over a shuffled order (s = 1): a few entities get most links
    zipf = {id(ts): list(itertools.accumulate(1.0 / (r + 1) for r in range(len(ts)))) for ts in (amb, targets)}
    for ts in (amb, targets):
        rng.shuffle(ts)
    n_red = int(round(REDIRECTS_PER_ARTICLE * min(pages, 10_000))) if redirects is None else redirects
    tmp = path.with_name(path.name + ".incomplete")
    opener = bz2.open if path.name.endswith(".bz2") else open
    n_links = n_words = 0
    with opener(tmp, "wt", encoding="utf-8") as f:
        f.write('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" xml:lang="en">\n')
        f.write("  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>enwiki</dbname>\n  </siteinfo>\n")
        page_id = 0
        for r in range(n_red):
            title, _, _ = rng.choice(targets)
            page_id += 1
            f.write(
                f"  <page>\n    <title>{escape(f'Redirect {r} to {title}')}</title>\n    <ns>0</ns>\n"
                f"    <id>{page_id}</id>\n    <redirect title={quoteattr(title)} />\n"
                f"    <revision><text>#REDIRECT [[{escape(title)}]]</text></revision>\n  </page>\n"
            )
        for p in range(pages):
            n = max(20, int(math.exp(rng.gauss(math.log(median_words), LOG_WORDS_SD))))
            n = min(n, 20_000)
            out: list[str] = []
            i = 0
            while i < n:
                if rng.random() < LINKS_PER_WORD:
                    ts = amb if rng.random() < 0.5 else targets
                    title, anchors, _ = ts[bisect.bisect(zipf[id(ts)], rng.random() * zipf[id(ts)][-1])]
                    anchor = rng.choice(anchors)
                    out.append(f"[[{title}|{anchor}]]" if anchor != title else f"[[{title}]]")
                    n_links += 1
                else:
                    out.append(words[rng.randrange(len(words))])
                i += 1
                if i % 18 == 0:
                    out[-1] += "."
            n_words += n
            page_id += 1
            text = escape(" ".join(out) + ".")
            f.write(
                f"  <page>\n    <title>Article {p}</title>\n    <ns>0</ns>\n    <id>{page_id}</id>\n"
                f"    <revision><text>{text}</text></revision>\n  </page>\n"
            )
        f.write("</mediawiki>\n")
    tmp.replace(path)
    return {"articles": pages, "redirects": n_red, "links": n_links, "words": n_words}


def bundle_targets(bundle: Path, titles_tsv: Path, limit: int = 200_000) -> list[tuple[str, list[str], bool]]:
    """Linkable entities of a bundle's English (and mul) alias tables: a synthetic title per
    entity (written to ``titles_tsv`` as title<TAB>QID) and its aliases as anchors."""
    sys.path.insert(0, str(ROOT))
    from xned.engine.kb import KB

    kb = KB(bundle / "kb")
    anchors: dict[int, list[str]] = {}
    ambiguous: set[int] = set()
    for table, offset in kb.tables_for("en"):
        for key, kid in table.keys.iteritems():
            ents, _ = table.by_id(kid)
            for e in ents.tolist():
                anchors.setdefault(int(e) + offset, []).append(key.title())
            if len(ents) >= 2:
                ambiguous.update(int(e) + offset for e in ents.tolist())
            if len(anchors) >= limit:
                break
    out = []
    with open(titles_tsv, "w", encoding="utf-8") as f:
        for e, keys in anchors.items():
            title = f"Entity {kb.qid(e)}"
            f.write(f"{title}\t{kb.qid(e)}\n")
            out.append((title, keys[:5], e in ambiguous))
    return out


TRAIN = """
import json, resource, sys, time
from pathlib import Path
from xned.export.experts.train import train_experts
t = time.perf_counter()
s = train_experts(Path(sys.argv[1]), [Path(sys.argv[2])], titles=Path(sys.argv[3]), holdout=0.0,
                  max_per_entity=int(sys.argv[4]), threads=int(sys.argv[5]), log=lambda m: print(m, file=sys.stderr))
print(json.dumps({"seconds": round(time.perf_counter() - t, 2),
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "summary": s}))
"""


def train(bundle: Path, dump: Path, titles: Path, max_per_entity: int, threads: int, log: Path | None = None) -> dict:
    """``train_experts`` in a child process: its summary, wall seconds and peak RSS (its
    progress lines go to ``log``, or to this process's stderr)."""
    cmd = [sys.executable, "-c", TRAIN, str(bundle), str(dump), str(titles), str(max_per_entity), str(threads)]
    with open(log, "w", encoding="utf-8") if log is not None else open(os.devnull, "w") as err:
        out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err if log else None, text=True)
    if out.returncode != 0:
        raise SystemExit(f"experts train failed: {shlex.join(cmd[:2])} ... (see {log or 'stderr'})")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, required=True, help="bundle with a KB and an encoder (copied)")
    ap.add_argument("--pages", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "bench-wiki")
    ap.add_argument("--median-words", type=int, default=400)
    ap.add_argument("--max-per-entity", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import shutil

    args.work.mkdir(parents=True, exist_ok=True)
    titles = args.work / "titles.tsv"
    targets = bundle_targets(args.bundle, titles)
    dump = args.work / f"synthetic-enwiki-{args.pages}.xml.bz2"
    sidecar = dump.with_name(dump.name + ".json")  # the dump's counts: the same arguments reuse it
    t = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from xned.fsutil import atomic_write_text

    made = json.loads(sidecar.read_text()) if dump.exists() and sidecar.exists() else {}
    if made.get("args") == [args.pages, args.seed]:
        counts = made["counts"]
    else:
        words = sample_words()
        counts = make_wiki_dump(dump, args.pages, targets, words=words, median_words=args.median_words, seed=args.seed)
        atomic_write_text(sidecar, json.dumps({"args": [args.pages, args.seed], "counts": counts}))
    gen_s = time.perf_counter() - t
    stage = args.work / "bundle"
    shutil.rmtree(stage, ignore_errors=True)
    shutil.copytree(args.bundle, stage)
    res = train(stage, dump, titles, args.max_per_entity, args.threads, args.work / "train.log")
    per_page = res["seconds"] / args.pages
    report = {
        "dump": {**counts, "bytes": dump.stat().st_size, "generate_s": round(gen_s, 1)},
        "train": res,
        "seconds_per_million_articles": round(per_page * 1e6),
        "projection_enwiki_hours_this_machine": round(per_page * ENWIKI_ARTICLES / 3600, 1),
        "load": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
