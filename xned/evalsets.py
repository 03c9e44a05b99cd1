"""Annotated evaluation data, read one way for ``xned eval``, ``xned teach`` and the expert
training: canonical JSONL (``{"id", "lang", "text", "mentions": [{"start", "end", "text",
"qid", "title"}]}``) and NIF Turtle (``.ttl``, the GERBIL format; needs ``rdflib``).

Gold: a mention's ``qid``; else its English Wikipedia ``title`` mapped through a title map
(title<TAB>qid); a mention with neither is NIL. A title that cannot be mapped is
``unresolved``: in-KB gold that no system can get right.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xned.errors import InputError
from xned.records import read_documents
from xned.titles import Titles, title_key
from xned.types import DocResult


@dataclass
class Gold:
    start: int
    end: int
    text: str
    qid: str | None
    title: str | None = None
    unresolved: bool = False
    #: the mention says what it is ("qid" or "title" present, null for NIL); a gold set may
    #: leave it out for NIL, a file of corrections may not (``xned teach``)
    stated: bool = True

    @property
    def nil(self) -> bool:
        return self.qid is None and not self.unresolved


@dataclass
class EvalDoc:
    id: str
    lang: str | None
    text: str
    gold: list[Gold]
    line: int | None = None  # its line in a JSONL file


def _gold(m: dict[str, Any], titles: Titles, where: str, text: str) -> Gold:
    try:
        s, e = int(m["start"]), int(m["end"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{where}: mention without integer start/end: {str(m)[:120]}") from None
    if not 0 <= s < e <= len(text):
        raise InputError(f"{where}: mention span {s}:{e} is outside the text ({len(text)} characters)")
    qid = m.get("qid") or None
    title = m.get("title") or None
    for name, value in (("qid", qid), ("title", title)):
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: mention {s}:{e} has a {name} that is not a string: {str(value)[:60]}")
    unresolved = False
    if qid is None and title:
        qid = titles.get(title_key(title))
        unresolved = qid is None
    return Gold(s, e, text[s:e], qid, title, unresolved, "qid" in m or "title" in m)


def eval_doc(obj: dict[str, Any], where: str, titles: Titles) -> EvalDoc:
    """An evaluation document from a canonical record (``records.read_documents``: an
    object with a string ``text``); ``InputError`` naming ``where`` for bad mentions."""
    text = obj["text"]
    ments = obj.get("mentions") or []
    if not isinstance(ments, list) or not all(isinstance(m, dict) for m in ments):
        raise InputError(f"{where}: 'mentions' must be a list of objects")
    gold = [_gold(m, titles, where, text) for m in ments]
    return EvalDoc(str(obj["id"]), obj.get("lang"), text, gold, obj.get("line"))


def read_records(path: Path, titles: Titles) -> Iterator[EvalDoc | InputError]:
    """Each document of a canonical JSONL file (read as ``xned link`` reads its input), or
    the error of a line that is not one."""
    with open(path, "rb") as f:
        for rec in read_documents(f, "jsonl", path.name):
            if isinstance(rec, DocResult):
                yield InputError(rec.error or f"{path.name}: unreadable line")
                continue
            try:
                yield eval_doc(rec, f"{path.name}:{rec['line']}", titles)
            except InputError as exc:
                yield exc


def read_jsonl(path: Path, titles: Titles) -> Iterator[EvalDoc]:
    """The documents of a canonical JSONL file; ``InputError`` at the first bad line."""
    for doc in read_records(path, titles):
        if isinstance(doc, InputError):
            raise doc
        yield doc


def read_nif(path: Path, titles: Titles, lang: str | None = None) -> Iterator[EvalDoc]:
    """NIF 2.0 Turtle: contexts with ``nif:isString``, phrases with begin/end indices and
    ``itsrdf:taIdentRef`` (``wikidata.org/entity/Q..`` or a ``wikipedia.org/wiki/Title``)."""
    try:
        import rdflib
    except ImportError:
        raise InputError(f"{path}: reading NIF needs rdflib: pip install 'xned[eval]'") from None
    from urllib.parse import unquote

    nif = rdflib.Namespace("http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#")
    its = rdflib.Namespace("http://www.w3.org/2005/11/its/rdf#")
    g = rdflib.Graph()
    try:
        g.parse(str(path), format="turtle")
    except Exception as exc:  # rdflib raises many parser exception types
        raise InputError(f"{path}: not valid Turtle ({str(exc)[:200]})") from None
    phrases: dict[Any, list[Gold]] = {}
    for ph in g.subjects(nif.referenceContext, None):
        ctx = g.value(ph, nif.referenceContext)
        s, e = g.value(ph, nif.beginIndex), g.value(ph, nif.endIndex)
        if s is None or e is None:
            continue
        ref_node = g.value(ph, its.taIdentRef)
        qid = title = None
        unresolved = False
        if ref_node is not None:
            ref = str(ref_node)
            if "wikidata.org/entity/" in ref:
                qid = ref.rsplit("/", 1)[1]
            elif "wikipedia.org/wiki/" in ref:
                title = unquote(ref.rsplit("/wiki/", 1)[1])
                qid = titles.get(title_key(title))
                unresolved = qid is None
        phrases.setdefault(ctx, []).append(
            Gold(int(str(s)), int(str(e)), "", qid if qid and qid[:1] == "Q" else None, title, unresolved)
        )
    for ctx in sorted(g.subjects(nif.isString, None), key=str):
        text = str(g.value(ctx, nif.isString))
        gold = sorted(phrases.get(ctx, []), key=lambda x: (x.start, x.end))
        for x in gold:
            if not 0 <= x.start < x.end <= len(text):
                raise InputError(f"{path}: phrase {x.start}:{x.end} outside its context {ctx}")
            x.text = text[x.start : x.end]
        yield EvalDoc(str(ctx), lang, text, gold)


def read_dataset(path: Path, titles: Titles) -> list[EvalDoc]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Evaluation file {path} not found.")
    name = path.name
    if name.endswith(".ttl"):
        return list(read_nif(path, titles))
    if name.endswith(".jsonl"):
        return list(read_jsonl(path, titles))
    raise InputError(f"{path}: unknown evaluation format; use canonical .jsonl or NIF .ttl")


def dataset_name(path: Path) -> str:
    name = Path(path).name
    for ext in (".jsonl", ".ttl"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name
