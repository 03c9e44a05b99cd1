"""``xned experts``: train word experts and calibrate the score fusion of a bundle."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xned.cli.options import THREADS_OPT, log_line, parse_langs, ray_integration

experts_app = typer.Typer(help="Train per-mention-string word experts and calibrate scoring.", no_args_is_help=True)


#: ``--absent`` of every command that calibrates the fusion
ABSENT_OPT = typer.Option(
    0.3,
    "--absent",
    min=0.0,
    max=1.0,
    help="Also fit on this fraction of the mentions as a bundle without their gold entity sees them "
    "(the gold removed, NIL the answer): NIL decisions that expect an incomplete KB (0 = none).",
)


@experts_app.command("train")
def train_cli(
    files: list[Path] = typer.Argument(
        ..., help="Annotated source-language data: canonical JSONL, or Wikipedia XML dumps (anchors as labels)."
    ),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Bundle with a KB and an encoder; experts/ is written."),
    source_lang: str = typer.Option(
        "en", "--source-lang", help="Source language(s) of the training contexts, e.g. en or en,es."
    ),
    titles: Path | None = typer.Option(None, "--titles", help="title<TAB>QID map for title-only gold / dump anchors."),
    holdout: float = typer.Option(
        0.2, "--holdout", min=0.0, max=0.9, help="Fraction of documents held out to calibrate the fusion (0 = none)."
    ),
    max_per_entity: int = typer.Option(64, "--max-per-entity", min=1, help="Training contexts kept per entity."),
    max_docs: int | None = typer.Option(None, "--max-docs", min=1, help="Read at most this many documents."),
    seed: int = typer.Option(0, "--seed"),
    threads: int | None = THREADS_OPT,
    absent: float = ABSENT_OPT,
    calibration_docs: int = typer.Option(
        2000,
        "--calibration-docs",
        min=1,
        help="Keep at most this many held-out documents for calibration (later ones train like the rest).",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the run a kill interrupted, from its last checkpoint (same inputs)."
    ),
    checkpoint_every: float = typer.Option(
        600.0, "--checkpoint-every", min=0.0, help="Seconds between checkpoints of the reading pass."
    ),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local, or ray: encode contexts and fit models on a Ray cluster (the same experts).",
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address for --engine ray (default: local)."
    ),
) -> None:
    """Train one classifier per ambiguous alias on source-language contexts; calibrate on held-out docs.

    Streams its input (a whole Wikipedia dump is fine): memory depends on the KB and
    --max-per-entity, not on the input's size; a progress line with an ETA comes every
    minute when stderr is not a terminal. The reading pass is checkpointed beside the
    bundle (.NAME.experts-checkpoint); after a kill, the same command with --resume
    continues from there and writes what an uninterrupted run would have."""
    from xned.errors import InputError
    from xned.export.experts.train import train_experts
    from xned.export.transaction import bundle_transaction

    bundle = bundle.absolute()
    encoding = fit_map = None
    if engine == "ray":
        ray = ray_integration()
        encoding, fit_map = ray.RayEncoding(bundle / "encoder", address=address), ray.ray_fit_map(address)
    elif engine != "local":
        raise InputError(f"Unknown --engine {engine!r}; choose local or ray.")
    checkpoint = bundle.parent / f".{bundle.name}.experts-checkpoint"
    if not resume and (checkpoint / "state.json").is_file():
        raise InputError(
            f"An interrupted run of xned experts train left a checkpoint in {checkpoint}: "
            f"run the same command with --resume to continue it, or remove that folder to start over."
        )
    with bundle_transaction(bundle, create=False) as stage:  # the bundle changes whole or not at all
        summary = train_experts(
            stage,
            files,
            titles=titles,
            source_langs=parse_langs(source_lang, "--source-lang"),
            seed=seed,
            holdout=holdout,
            max_per_entity=max_per_entity,
            max_docs=max_docs,
            threads=threads,
            absent=absent,
            calibration_docs=calibration_docs,
            checkpoint=checkpoint,
            resume=resume,
            every=checkpoint_every,
            encoding=encoding,
            fit_map=fit_map,
            log=log_line,
        )
    typer.echo(json.dumps(summary, indent=2))


@experts_app.command("calibrate")
def calibrate_cli(
    files: list[Path] = typer.Argument(..., help="Annotated JSONL not used to train the experts."),
    bundle: Path = typer.Option(..., "--bundle", "-b"),
    titles: Path | None = typer.Option(None, "--titles", help="title<TAB>QID map for title-only gold."),
    lang: str | None = typer.Option(None, "--lang", help="Only documents in these languages (comma-separated)."),
    threads: int | None = THREADS_OPT,
    absent: float = ABSENT_OPT,
) -> None:
    """Fit the fusion weights, confidence and NIL threshold (scoring.json) on annotated documents."""
    from xned.export.experts.calibrate import calibrate
    from xned.export.transaction import bundle_transaction

    with bundle_transaction(bundle, create=False) as stage:
        result = calibrate(
            stage,
            files,
            titles=titles,
            langs=parse_langs(lang, "--lang") if lang else None,
            threads=threads,
            absent=absent,
            log=log_line,
        )
    typer.echo(json.dumps(result, indent=2))


@experts_app.command("calibrate-wiki")
def calibrate_wiki_cli(
    samples: list[Path] = typer.Argument(..., help="Wikipedia XML samples (.xml, .bz2, .gz)."),
    bundle: Path = typer.Option(..., "--bundle", "-b"),
    threads: int | None = THREADS_OPT,
    absent: float = ABSENT_OPT,
) -> None:
    """Fit scoring.json on Wikipedia anchors, gold decided by the KB's own names (no annotated
    set), and measure the reach of analyst corrections on the same samples."""
    from xned.export.experts.anchors import calibrate_on_anchors
    from xned.export.experts.reach import measure_reach
    from xned.export.transaction import bundle_transaction

    with bundle_transaction(bundle, create=False) as stage:
        result = calibrate_on_anchors(stage, samples, threads=threads, absent=absent, log=log_line)
        result["corrections_reach"] = measure_reach(stage, samples, threads=threads, log=log_line)["corrections_reach"]
    typer.echo(json.dumps(result, indent=2))


@experts_app.command("reach")
def reach_cli(
    samples: list[Path] = typer.Argument(..., help="Wikipedia XML samples (.xml, .bz2, .gz)."),
    bundle: Path = typer.Option(..., "--bundle", "-b"),
    threads: int | None = THREADS_OPT,
) -> None:
    """Measure how far an analyst's correction carries (scoring.json "corrections_reach"):
    the cosines of same-name links in different Wikipedia articles, with the bundle's encoder."""
    from xned.export.experts.reach import measure_reach
    from xned.export.transaction import bundle_transaction

    with bundle_transaction(bundle, create=False) as stage:
        result = measure_reach(stage, samples, threads=threads, log=log_line)
    typer.echo(json.dumps(result, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(experts_app, name="experts")
