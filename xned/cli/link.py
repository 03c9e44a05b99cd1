"""``xned link``: link text from an argument, a file or stdin."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import typer

from xned import config
from xned.cli.options import (
    BUNDLE_OPT,
    CANDIDATES_OPT,
    CORRECTIONS_OPT,
    DETECTION_OPT,
    DEVICE_OPT,
    GIVEN_SPANS_OPT,
    LANG_OPT,
    MAX_CHARS_OPT,
    NIL_IDS_OPT,
    PROVIDER_OPT,
    STATE_OPT,
    THREADS_OPT,
    THRESHOLD_OPT,
    TOP_K_OPT,
    VARIANT_OPT,
    VERIFY_OPT,
    ray_integration,
)
from xned.cli.output import CheckpointedOutput, Writer, check_output
from xned.cli.progress import Progress
from xned.errors import InputError
from xned.records import ReadProgress, read_documents
from xned.runner import LinkOptions, link_stream

if TYPE_CHECKING:
    from xned.engine.linker import Linker


class Format(str, Enum):
    pretty = "pretty"
    json = "json"
    jsonl = "jsonl"
    tsv = "tsv"


class InputFormat(str, Enum):
    auto = "auto"
    text = "text"
    jsonl = "jsonl"


def _link_on_ray(
    input: Path | None, output: Path | None, fmt: Format, address: str | None, workers: int, opts: LinkOptions
) -> None:
    if input is None or output is None or str(input) == "-":
        raise InputError("--engine ray reads -i FILE|DIR (JSONL or Parquet) and writes -o DIR.")
    if fmt.value not in ("jsonl", "pretty"):
        raise InputError("--engine ray writes JSONL files (-f jsonl), or Parquet when -o ends in .parquet.")
    run_link = ray_integration().run_link
    out_format = "parquet" if output.suffix == ".parquet" else "jsonl"
    errors = run_link(input, output, opts, address=address, out_format=out_format, actors=workers)
    typer.echo(f"Linked {input} into {output} on Ray; {errors} document(s) with an error.", err=True)
    if errors:
        raise typer.Exit(1)


def link_cli(
    text: str | None = typer.Argument(None, help="Text to link, or '-' to read stdin."),
    input: Path | None = typer.Option(None, "--input", "-i", help="Read documents from FILE ('-' = stdin)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write results to FILE (crash-safe: see --resume) instead of stdout."
    ),
    fmt: Format = typer.Option(Format.pretty, "--format", "-f", help="Output format."),
    input_format: InputFormat = typer.Option(
        InputFormat.auto,
        "--input-format",
        help="Input lines are plain text or canonical JSONL (auto: by the first line).",
    ),
    lang: str | None = LANG_OPT,
    bundle: Path | None = BUNDLE_OPT,
    top_k: int = TOP_K_OPT,
    threshold: float | None = THRESHOLD_OPT,
    given_spans: bool = GIVEN_SPANS_OPT,
    candidates: bool = CANDIDATES_OPT,
    variant: str = VARIANT_OPT,
    threads: int | None = THREADS_OPT,
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Worker processes (one ONNX thread each)."),
    providers: list[str] | None = PROVIDER_OPT,
    device: str = DEVICE_OPT,
    max_chars: int = MAX_CHARS_OPT,
    verify: bool = VERIFY_OPT,
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted -o run where it stopped."),
    force: bool = typer.Option(
        False, "--force", help="Replace a symlink/FIFO/device at -o, or discard an interrupted run's output."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
    engine: str = typer.Option(
        "local", "--engine", help="local (this machine, --workers) or ray (a Ray cluster; -i/-o files or directories)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray cluster address for --engine ray (auto = the running cluster; default: a local one).",
    ),
    state: Path | None = STATE_OPT,
    use_corrections: bool = CORRECTIONS_OPT,
    detection: str = DETECTION_OPT,
    nil_ids: bool = NIL_IDS_OPT,
) -> None:
    """Link entity mentions to Wikidata. Results go to stdout (or -o); progress to stderr."""
    from xned.langs import normalize_lang
    from xned.records import ReadProgress

    sources = [s for s in (text is not None, input is not None) if s]
    if len(sources) != 1:
        raise InputError("Give either a TEXT argument or --input FILE (use '-' for stdin), not both or neither.")
    if text is not None and text != "-" and not text.strip():
        raise InputError("Empty text: nothing to link. Pass a non-empty TEXT, --input FILE or '-' for stdin.")
    if resume and output is None:
        raise InputError("--resume continues an output file: give -o FILE.")
    lang = normalize_lang(lang)
    if engine not in ("local", "ray"):
        raise InputError(f"Unknown --engine {engine!r}; choose local or ray.")
    opts = LinkOptions(
        bundle=None if bundle is None else str(bundle),
        lang=lang,
        given_spans=given_spans,
        candidates=candidates,
        top_k=top_k,
        threshold=threshold,
        variant=variant,
        max_chars=max_chars,
        providers=tuple(providers) if providers else None,
        device=device,
        threads=threads,
        verify=verify,
        use_corrections=use_corrections,
        state=None if state is None else str(state),
        detection=detection,
        nil_ids=nil_ids,
    )
    if engine == "ray":
        _link_on_ray(input, output, fmt, address, workers, opts)
        return
    if workers <= 1:
        linker = opts.load()
    else:  # fail early on a bad bundle; the workers load their own
        from xned.engine.bundle import check_files, read_manifest

        linker = None
        check_files(read_manifest(bundle if bundle is not None else config.default_bundle_path()), verify=verify)

    read = ReadProgress()
    docs, stream, in_path = _open_documents(text, input, input_format, lang, read)
    try:
        quiet = quiet or stream is None  # one TEXT: no progress line
        errors, count, last = _link_all(docs, opts, linker, workers, fmt, output, in_path, resume, force, quiet, read)
    finally:
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
    if text is not None and text != "-" and errors:
        raise InputError(last or "linking failed")
    if errors:
        typer.echo(
            f'Error: {errors} of {count} documents could not be linked (see the "error" field '
            f"of each; the output has one record per input document).",
            err=True,
        )
        raise typer.Exit(1)


def _open_documents(
    text: str | None, input: Path | None, input_format: InputFormat, lang: str | None, read: ReadProgress
) -> tuple[Iterator[Any], IO[bytes] | None, Path | None]:
    """The documents to link (from TEXT, a file or stdin), the stream they are read from
    (the caller closes it) and the input file."""
    if text is not None and text != "-":
        return iter([{"id": None, "text": text, "lang": lang}]), None, None
    if text == "-" or str(input) == "-":
        stream, name, in_path = sys.stdin.buffer, "stdin", None
    else:
        in_path = Path(str(input))
        if not in_path.exists():
            raise InputError(f"Input file {in_path} not found.")
        if in_path.is_dir():
            raise InputError(f"Input {in_path} is a directory; give a file (one document per line).")
        stream, name = open(in_path, "rb"), in_path.name  # noqa: SIM115 - the caller closes it
    return read_documents(stream, input_format.value, name, read), stream, in_path


def _link_all(
    docs: Iterator[Any],
    opts: LinkOptions,
    linker: Linker | None,
    workers: int,
    fmt: Format,
    output: Path | None,
    in_path: Path | None,
    resume: bool,
    force: bool,
    quiet: bool,
    read: ReadProgress,
) -> tuple[int, int, str | None]:
    """Link ``docs`` into ``output`` (crash-safe, resumable) or stdout; (documents with an
    error, documents, the last error)."""
    total = in_path.stat().st_size if in_path is not None and in_path.is_file() else None
    writer = Writer(fmt.value, opts.candidates, to_terminal=output is None and sys.stdout.isatty())
    sink: CheckpointedOutput | None = None
    skip = 0
    if output is not None:
        check_output(output, [in_path] if in_path else [], force)
        signature = {**opts.as_dict(), "format": fmt.value, "input": str(in_path or "stdin"), "input_size": total}
        signature.pop("threads")
        sink = CheckpointedOutput(output, signature)
        skip = sink.open(resume, force)

    def emit(rendered: str, done: int, always: bool = True) -> None:
        if sink is None:
            sys.stdout.write(rendered)
        elif rendered or always:  # a write also records how many documents are done
            sink.write(rendered, done)

    errors = count = mentions = 0
    last: str | None = None
    progress = Progress(quiet, total, read)
    try:
        if skip:
            docs = itertools.islice(docs, skip, None)
            progress.note(f"resuming after {skip} documents already in {output}")
        emit(writer.header() if skip == 0 else "", skip, always=False)
        for res in link_stream(docs, opts, workers=workers, linker=linker):
            index = skip + count
            count += 1
            mentions += len(res.links)
            if res.error:
                errors, last = errors + 1, res.error
                if fmt != Format.pretty:
                    where = "" if res.id and res.error.startswith(f"{res.id}:") else f"document {res.id or index + 1}: "
                    progress.note(f"warning: {where}{res.error}")
            emit(writer.record(res, index), index + 1)
            progress.update(count, mentions)
        emit(writer.footer(skip + count), skip + count)
        if sink is None:
            sys.stdout.flush()
        else:
            sink.finish()
            sink = None
    except BaseException:
        if sink is not None:
            sink.suspend()
        raise
    finally:
        progress.close()
    return errors, count, last


def register(app: typer.Typer) -> None:
    app.command("link")(link_cli)
