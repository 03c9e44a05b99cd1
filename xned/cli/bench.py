"""``xned bench``: throughput and latency of linking on a bundle (medians, no asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xned.cli.link import BUNDLE_OPT


def bench_cli(
    bundle: Path | None = BUNDLE_OPT,
    input: Path | None = typer.Option(
        None,
        "--input",
        "-i",
        help="Canonical JSONL or text lines (default: built-in multilingual sentences).",
    ),
    repeat: int = typer.Option(5, "--repeat", min=1, help="Passes over the documents; medians reported."),
    limit: int = typer.Option(500, "--limit", min=1, help="At most this many documents."),
    threads: int | None = typer.Option(None, "--threads", min=1),
    given_spans: bool = typer.Option(False, "--given-spans", help="Use the mentions in the JSONL input (NED mode)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Report docs/s, mentions/s and p50/p95 per-document latency."""
    from xned.bench import run_bench

    result = run_bench(bundle, input, repeat=repeat, limit=limit, threads=threads, given_spans=given_spans)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for k, v in result.items():
        typer.echo(f"{k:<28} {v}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cli)
