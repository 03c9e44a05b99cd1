"""``xned teach`` and ``xned corrections list|export|import|forget``: an analyst's corrections
of a bundle, kept in the user's state directory (``xned.engine.state``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from xned.cli.options import BUNDLE_OPT, STATE_OPT, THREADS_OPT
from xned.engine import layout as L
from xned.errors import InputError

corrections_app = typer.Typer(
    help="List, share and forget the corrections taught with xned teach (or the web page).",
    no_args_is_help=True,
)
BATCH = 32  # documents encoded per teaching pass


def _store(bundle: Path | None, state: Path | None) -> tuple[Path, Any]:
    from xned import config
    from xned.engine.bundle import read_manifest
    from xned.engine.state import Store, bundle_id, state_dir

    root = Path(bundle) if bundle is not None else config.default_bundle_path()
    read_manifest(root)  # a clear error when it is not a bundle
    return root, Store(state_dir(state), bundle_id(root))


def _teach_docs(path: Path, titles: dict[str, str], nil: bool, known: Any) -> tuple[list[tuple[int, dict]], dict]:
    """(line, document with taught mentions) per usable line of ``path``, and counts."""
    from xned.evalsets import read_records

    out: list[tuple[int, dict]] = []
    counts = {"unresolved": 0, "unstated": 0, "nil": 0, "missing": 0, "bad_lines": 0}
    for doc in read_records(path, titles):
        if isinstance(doc, InputError):
            typer.echo(f"  skipped: {doc}", err=True)
            counts["bad_lines"] += 1
            continue
        lineno = doc.line or 0
        mentions = []
        for g in doc.gold:
            if not g.stated:  # never NIL by omission: a correction says what it is
                typer.echo(
                    f'  skipped: {path.name}:{lineno}: mention {g.start}:{g.end} {g.text!r} has no "qid" '
                    f'(give the entity, or "qid": null for not an entity of the KB)',
                    err=True,
                )
                counts["unstated"] += 1
            elif g.unresolved:
                counts["unresolved"] += 1
            elif g.qid is None and not nil:
                counts["nil"] += 1
            elif g.qid is not None and known(g.qid) < 0:
                counts["missing"] += 1
            else:
                mentions.append({"start": g.start, "end": g.end, "qid": g.qid})
        if mentions:
            out.append((lineno, {"text": doc.text, "lang": doc.lang, "mentions": mentions}))
    return out, counts


def teach_cli(
    data: Path = typer.Argument(..., help="Canonical JSONL whose mentions carry the right qid (null = NIL)."),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
    titles: Path | None = typer.Option(None, "--titles", help="title<TAB>QID map for mentions with only a title."),
    nil: bool = typer.Option(True, "--nil/--no-nil", help="Also teach NIL mentions ('not an entity of the KB')."),
    threads: int | None = THREADS_OPT,
) -> None:
    """Teach corrections: every mention of FILE becomes one, used at once by every xned that
    loads this bundle (link, eval, serve). Lines that cannot be read are skipped and named."""
    from xned.engine.linker import Linker
    from xned.titles import load_titles

    if not data.is_file():
        raise InputError(f"Input file {data} not found.")
    linker = Linker.load(bundle, threads=threads, state=state)
    if linker.corrections is not None and linker.corrections.error is not None:
        raise InputError(linker.corrections.error)
    docs, counts = _teach_docs(data, load_titles(titles), nil, linker.kb.index)
    taught = failed = 0
    for i in range(0, len(docs), BATCH):
        batch = docs[i : i + BATCH]
        try:
            taught += len(linker.teach_batch([d for _, d in batch]))
        except InputError:  # find the document(s) at fault, teach the others
            for lineno, d in batch:
                try:
                    taught += len(linker.teach_batch([d]))
                except InputError as exc:
                    typer.echo(f"  skipped: {data.name}:{lineno}: {exc}", err=True)
                    failed += 1
    assert linker.corrections is not None and linker.corrections.store is not None
    typer.echo(
        f"Taught {taught:,} corrections from {data}; {len(linker.corrections):,} in {linker.corrections.store.path}.",
        err=True,
    )
    notes = {
        "unresolved": "mentions whose title --titles does not map (skipped)",
        "unstated": 'mentions without "qid" (skipped, named above)',
        "nil": "NIL mentions (skipped: --no-nil)",
        "missing": "mentions of entities this bundle's KB lacks (skipped; add them with xned kb add)",
        "bad_lines": "lines that could not be read (named above)",
    }
    for k, v in counts.items():
        if v:
            typer.echo(f"  {v:,} {notes[k]}", err=True)
    if failed or counts["bad_lines"] or counts["unstated"]:
        raise typer.Exit(1)


@corrections_app.command("list")
def list_cli(
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per correction (no vectors)."),
) -> None:
    """The corrections of a bundle: id, date, mention, the entity taught, the context."""
    from xned.engine.kb import KB

    root, store = _store(bundle, state)
    examples = store.read()
    kb = KB(root / L.KB)
    for e in examples:
        idx = -1 if e.qid is None else kb.index(e.qid)
        label = "NIL (not an entity of the KB)" if e.qid is None else kb.record(idx)[0] if idx >= 0 else "(not in KB)"
        if as_json:
            row = {k: v for k, v in e.to_json().items() if k not in ("vector", "v")}
            typer.echo(json.dumps(row | {"label": label}, ensure_ascii=False))
        else:
            typer.echo(f"{e.id}  {e.time[:10]}  {e.lang or '-':>3}  {e.mention!r} -> {e.qid or 'NIL'} {label}")
            typer.echo(f"      {e.context}")
    if not as_json:
        typer.echo(f"{len(examples):,} corrections in {store.path}", err=True)


@corrections_app.command("export")
def export_cli(
    output: Path = typer.Option(
        ..., "--output", "-o", help="File to write (JSONL, to share with xned corrections import)."
    ),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
) -> None:
    """Write the corrections of a bundle to a file a team mate can import."""
    from xned.cli.io import output_stream
    from xned.engine.state import encoder_id, export_lines

    root, store = _store(bundle, state)
    examples = store.read()
    with output_stream(output) as f:
        f.write(export_lines(examples, store.ident, encoder_id(root)))
    typer.echo(f"Exported {len(examples):,} corrections to {output}.", err=True)


@corrections_app.command("import")
def import_cli(
    path: Path = typer.Argument(..., help="A file written by xned corrections export."),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
    any_bundle: bool = typer.Option(
        False, "--any-bundle", help="Accept a file exported from another bundle (only if both share one encoder)."
    ),
) -> None:
    """Add the corrections of an exported file (those already here are kept once)."""
    from xned.engine.state import encoder_id, merge, read_export

    if not path.is_file():
        raise InputError(f"Corrections file {path} not found.")
    root, store = _store(bundle, state)
    new, problems = read_export(path, store.ident, any_bundle=any_bundle, encoder=encoder_id(root), dim=_dim(root))
    for why in problems:
        typer.echo(f"  skipped: {why}", err=True)
    before = len(store.read())
    after = len(store.update(lambda old: merge(old, new), root))
    typer.echo(f"Imported {after - before:,} new corrections ({len(new) - after + before:,} already here).", err=True)
    if problems:
        typer.echo(f"  {len(problems):,} records of {path} were skipped (named above).", err=True)
        raise typer.Exit(1)


def _dim(root: Path) -> int | None:
    """The vector length of a bundle's encoder (its config's ``dim``), if it records one."""
    from xned.engine.bundle import read_json_object

    cfg = root / L.ENCODER / L.ENCODER_CONFIG
    dim = read_json_object(cfg, "Encoder config").get("dim") if cfg.is_file() else None
    return dim if isinstance(dim, int) else None


@corrections_app.command("forget")
def forget_cli(
    ids: list[str] | None = typer.Argument(None, help="Ids of corrections to remove (see xned corrections list)."),
    key: list[str] | None = typer.Option(None, "--key", help="Remove every correction of this mention string."),
    all_: bool = typer.Option(False, "--all", help="Remove every correction of this bundle."),
    bad: bool = typer.Option(False, "--bad", help="Remove only the lines of the file that are not corrections."),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
) -> None:
    """Remove corrections: by id, by mention string, or all (also a corrupted file)."""
    from xned.engine.normalize import normalize

    _, store = _store(bundle, state)
    if all_:
        size = store.clear()
        typer.echo(f"Removed {store.path} ({size:,} bytes)." if size else "No corrections to remove.", err=True)
        return
    if bad:
        store.read()
        n = len(store.problems)
        store.update(lambda old: old, drop_bad=True)
        typer.echo(f"Removed {n:,} unreadable line(s); {len(store.read()):,} corrections remain.", err=True)
        if not ids and not key:
            return
    if not ids and not key:
        raise InputError("Say what to forget: correction ids, --key MENTION, --bad or --all.")
    keys = {normalize(k) for k in key or []}
    wanted = set(ids or [])
    before = store.read()
    unknown = wanted - {e.id for e in before}
    if unknown:
        raise InputError(f"No correction with id {', '.join(sorted(unknown))}; see xned corrections list.")
    after = store.update(lambda old: [e for e in old if e.id not in wanted and e.key not in keys])
    typer.echo(f"Removed {len(before) - len(after):,} corrections; {len(after):,} remain.", err=True)


def register(app: typer.Typer) -> None:
    app.command("teach")(teach_cli)
    app.add_typer(corrections_app, name="corrections")
