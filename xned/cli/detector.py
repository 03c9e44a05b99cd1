"""``xned detector``: train the bundle's mention detector (a head on the encoder's token states)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xned.cli.options import THREADS_OPT, log_line, parse_langs

detector_app = typer.Typer(help="Train the trained mention detector of a bundle.", no_args_is_help=True)


@detector_app.command("train")
def train_cli(
    files: list[Path] = typer.Argument(
        ...,
        help="Annotated source-language data: canonical JSONL (every mention, linked or NIL, is a positive), "
        "or Wikipedia XML dumps (links as partly marked names: capitalized unlinked words and lower-case links "
        "are left out of the loss, only lower-case text is taught as no mention).",
    ),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle with an encoder; detector/ is written."),
    source_lang: str = typer.Option("en", "--source-lang", help="Language(s) of the training documents, e.g. en."),
    hidden: int = typer.Option(256, "--hidden", min=8, max=4096, help="Hidden units of the head."),
    epochs: int = typer.Option(4, "--epochs", min=1, max=100),
    min_score: float = typer.Option(
        0.5, "--min-score", min=0.0, max=1.0, help="Detected spans scoring below this (mean 1 - P(O)) are dropped."
    ),
    rule_min_score: float = typer.Option(
        0.15,
        "--rule-min-score",
        min=0.0,
        max=1.0,
        help="An alias-table match the detector did not tag is kept when its pieces score this.",
    ),
    max_docs: int | None = typer.Option(None, "--max-docs", min=1, help="Read at most this many documents."),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = THREADS_OPT,
) -> None:
    """Train detector/ on annotated mentions in the source language; it applies to every language."""
    from xned.export.detector.train import train_detector
    from xned.export.transaction import bundle_transaction

    with bundle_transaction(bundle, create=False) as stage:  # the bundle changes whole or not at all
        summary = train_detector(
            stage,
            files,
            source_langs=parse_langs(source_lang, "--source-lang"),
            hidden=hidden,
            epochs=epochs,
            min_score=min_score,
            rule_min_score=rule_min_score,
            max_docs=max_docs,
            seed=seed,
            threads=threads,
            log=log_line,
        )
    typer.echo(json.dumps(summary, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(detector_app, name="detector")
