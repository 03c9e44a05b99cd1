"""``xned nil list|merge|split|promote|export``: the local identities of unknown entities (``xned link
--nil-ids``), kept in the state directory beside the corrections (``xned.engine.nil``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from xned.cli.options import BUNDLE_OPT, STATE_OPT, THREADS_OPT
from xned.errors import InputError

nil_app = typer.Typer(
    help="Unknown entities: list, merge, split, promote and export the NIL clusters that xned link --nil-ids builds.",
    no_args_is_help=True,
)


def _store(bundle: Path | None, state: Path | None) -> Any:
    from xned import config
    from xned.engine.bundle import read_manifest
    from xned.engine.nil import FILE, NilStore, store_dir
    from xned.engine.state import state_dir

    root = Path(bundle) if bundle is not None else config.default_bundle_path()
    read_manifest(root)  # a clear error when it is not a bundle
    where = store_dir(state_dir(state), root)
    if not (where / FILE).is_file():
        raise InputError(
            f"No NIL clusters for bundle {root} in {state_dir(state)}: link with --nil-ids first "
            f"(xned link ... --nil-ids), with the same --state."
        )
    return NilStore(where)


@nil_app.command("list")
def list_cli(
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
    limit: int = typer.Option(20, "--limit", min=1, help="The largest clusters first, at most this many."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per cluster."),
) -> None:
    """The largest NIL clusters: id, name, mentions, the names seen, example contexts."""
    for c in _store(bundle, state).clusters(limit):
        if as_json:
            typer.echo(json.dumps(c, ensure_ascii=False))
            continue
        typer.echo(f"{c['nil_id']}  {c['label']}  ({c['mentions']} mentions; names: {', '.join(c['names'])})")
        for ex in c["examples"][:2]:
            typer.echo(f"    {ex['doc'] or ''}: ...{ex['context']}...")


@nil_app.command("merge")
def merge_cli(
    keep: str = typer.Argument(..., help="The cluster that stays (NIL:...)."),
    other: str = typer.Argument(..., help="The cluster merged into it; its id then stands for KEEP."),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
) -> None:
    """Merge two clusters that are one unknown entity."""
    store = _store(bundle, state)
    try:
        kept = store.merge(keep, other)
    except KeyError as exc:
        raise InputError(f"No NIL cluster {exc.args[0]}; xned nil list shows them.") from None
    typer.echo(f"Merged {other} into {kept}.", err=True)


@nil_app.command("split")
def split_cli(
    nil_id: str = typer.Argument(..., help="The cluster that holds two unknown entities (NIL:...)."),
    names: list[str] = typer.Option(..., "--name", help="A name of it that belongs to the other one (repeatable)."),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
) -> None:
    """Split a cluster that holds two unknown entities: the names given, and their example
    contexts, become a new cluster; later mentions of them join it."""
    store = _store(bundle, state)
    try:
        new = store.split(nil_id, names)
    except KeyError as exc:
        raise InputError(f"No NIL cluster {exc.args[0]}; xned nil list shows them.") from None
    except ValueError as exc:
        raise InputError(f"Cannot split {nil_id}: {exc}.") from None
    typer.echo(f"Split {', '.join(names)} off {nil_id} into {new}.", err=True)
    typer.echo(new)


@nil_app.command("promote")
def promote_cli(
    nil_id: str = typer.Argument(..., help="The cluster to make an entity of the bundle (NIL:...)."),
    label: str = typer.Option(..., "--label", help="The entity's name."),
    description: str = typer.Option("", "--description", help="What it is (shown beside links)."),
    type_name: str = typer.Option("", "--type", help="Its class, e.g. person, organization, place."),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
    threads: int | None = THREADS_OPT,
) -> None:
    """Add an unknown entity to the bundle (its overlay, as xned kb add does) with a local
    QID (Q9...); the names of its mentions become its aliases, so later documents link to
    it like to any other entity of the bundle."""
    from xned import config
    from xned.export.kb.promote import promote

    root = Path(bundle) if bundle is not None else config.default_bundle_path()
    done = promote(
        root, _store(bundle, state), nil_id, label, description=description, type_name=type_name, threads=threads
    )
    names = ", ".join(done["names"])
    typer.echo(f"Promoted {done['nil_id']} to {done['qid']} ({label}; names: {names}) in {root}.", err=True)


@nil_app.command("export")
def export_cli(
    output: Path = typer.Option(..., "--output", "-o", help="File to write (.jsonl or .tsv)."),
    bundle: Path | None = BUNDLE_OPT,
    state: Path | None = STATE_OPT,
) -> None:
    """Every cluster as JSONL (id, label, mentions, names, examples) or TSV (id, label, mentions, names)."""
    from xned.fsutil import atomic_file

    clusters = _store(bundle, state).clusters()
    with atomic_file(output) as f:
        for c in clusters:
            if output.suffix == ".tsv":
                f.write(f"{c['nil_id']}\t{c['label']}\t{c['mentions']}\t{'|'.join(c['names'])}\n")
            else:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
    typer.echo(f"Wrote {len(clusters)} clusters to {output}.", err=True)


def register(app: typer.Typer) -> None:
    app.add_typer(nil_app, name="nil")
