"""``xned eval``: accuracy, candidate recall and NIL figures per dataset and variant."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xned.cli.options import BUNDLE_OPT, CORRECTIONS_OPT, STATE_OPT, THREADS_OPT


def eval_cli(
    data: list[Path] = typer.Argument(..., help="Canonical JSONL or NIF .ttl evaluation files."),
    bundle: Path | None = BUNDLE_OPT,
    titles: Path | None = typer.Option(None, "--titles", help="title<TAB>QID map for title-only gold."),
    errors: int = typer.Option(0, "--errors", min=0, help="Print this many sample errors per dataset."),
    end_to_end: bool = typer.Option(True, "--e2e/--no-e2e", help="Also run detection (end-to-end scores)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many documents per file."),
    threads: int | None = THREADS_OPT,
    top_k: int = typer.Option(30, "--top-k", min=1),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the full report as JSON here."),
    state: Path | None = STATE_OPT,
    use_corrections: bool = CORRECTIONS_OPT,
) -> None:
    """Evaluate a bundle: NED (gold spans) for prior/similarity/experts/fused, and end-to-end."""
    from xned.cli.io import output_stream
    from xned.engine.linker import Linker
    from xned.evaluate import evaluate, markdown

    linker = Linker.load(bundle, threads=threads, top_k=top_k, use_corrections=use_corrections, state=state)
    report = evaluate(linker, data, titles=titles, end_to_end=end_to_end, errors=errors, limit=limit)
    typer.echo(markdown(report))
    for name, errs in report["errors"].items():
        typer.echo(f"\nSample errors, {name}:")
        for e in errs:
            typer.echo(
                f"  {e['mention']!r} gold={e['gold']} predicted={e['predicted']} "
                f"gold_in_candidates={e['gold_in_candidates']} candidates={' '.join(e['candidates'])}"
            )
    if json_out is not None:
        with output_stream(json_out) as f:
            f.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cli)
