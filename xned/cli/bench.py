"""``xned bench``: throughput, latency, start-up and memory (medians, one run, no asserts)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xned.cli.options import BUNDLE_OPT, DEVICE_OPT


def bench_cli(
    bundle: Path | None = BUNDLE_OPT,
    inputs: list[Path] | None = typer.Option(
        None,
        "--input",
        "-i",
        help="Canonical JSONL or text lines, repeatable (default: built-in multilingual sentences).",
    ),
    repeat: int = typer.Option(3, "--repeat", min=1, help="Runs of each measurement; medians reported."),
    limit: int = typer.Option(500, "--limit", min=1, help="At most this many documents."),
    workers: int = typer.Option(2, "--workers", min=2, help="Worker processes compared with one."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="ONNX threads of the single process."),
    given_spans: bool = typer.Option(False, "--given-spans", help="Use the mentions in the JSONL input (NED mode)."),
    torch_model: Path | None = typer.Option(
        None,
        "--torch-model",
        help="Hugging Face folder of the same encoder: also time 'the PyTorch way' (needs the [export] extra).",
    ),
    device: str = DEVICE_OPT,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Report mentions/s for 1 and N workers, cold start, p50/p95 latency, RSS/PSS per process."""
    from xned.bench import run_bench

    result = run_bench(
        bundle,
        list(inputs or []),
        repeat=repeat,
        limit=limit,
        workers=workers,
        given_spans=given_spans,
        threads=threads,
        device=device,
    )
    if torch_model is not None:
        from xned.bench import load_corpus
        from xned.export.encoder.torch_baseline import torch_way

        # one timed pass: the PyTorch way is slow enough that its noise is small in relative terms
        tw = torch_way(bundle, torch_model, load_corpus(list(inputs or []), limit), given_spans, repeat=1)
        result.update(tw)
        result["warm_vs_torch_way"] = round(result["warm_mentions_per_s"] / tw["torch_way_mentions_per_s"], 2)
        result["workers_vs_torch_way"] = round(
            result[f"workers_{workers}_mentions_per_s"] / tw["torch_way_mentions_per_s"], 2
        )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    for k, v in result.items():
        typer.echo(f"{k:<36} {v}")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cli)
