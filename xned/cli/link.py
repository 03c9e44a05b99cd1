"""``xned link``: link text from an argument, a file or stdin."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import IO, Any

import typer

from xned import config
from xned.cli.io import BadLine, doc_record, output_stream, read_documents
from xned.errors import InputError
from xned.types import DocResult


class Format(str, Enum):
    pretty = "pretty"
    json = "json"
    jsonl = "jsonl"
    tsv = "tsv"


class InputFormat(str, Enum):
    auto = "auto"
    text = "text"
    jsonl = "jsonl"


BUNDLE_OPT = typer.Option(
    None, "--bundle", "-b", help="Bundle directory (default: $XNED_BUNDLE or the embedded bundle)."
)


def load_linker(bundle: Path | None, **kw: Any):
    from xned.engine.linker import Linker

    return Linker.load(bundle, **kw)


def _tsv_escape(s: str | None) -> str:
    return "" if s is None else s.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _write_pretty(out: IO[str], res: DocResult, to_terminal: bool) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(
        file=out,
        force_terminal=to_terminal,
        width=None if to_terminal else 120,
        highlight=False,
        soft_wrap=True,
    )
    head = f"[{res.id}] " if res.id else ""
    if res.error:
        console.print(Text(f"{head}error: {res.error}", style="red"))
        return
    text = Text(res.text)
    for lk in res.links:
        text.stylize("bold green" if lk.qid else "dim underline", lk.start, lk.end)
    if head:
        console.print(Text(head, style="bold"), end="")
    console.print(text)
    if not res.links:
        console.print(Text("  (no entities found)", style="dim"))
        return
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    for col in ("mention", "span", "qid", "label", "score", "description"):
        table.add_column(col, overflow="fold")
    for lk in res.links:
        table.add_row(
            lk.text,
            f"{lk.start}-{lk.end}",
            lk.qid or "NIL",
            lk.label or "",
            f"{lk.score:.2f}",
            (lk.description or "")[:60],
        )
    console.print(table)
    console.print()


def link_cli(
    text: str | None = typer.Argument(None, help="Text to link, or '-' to read stdin."),
    input: Path | None = typer.Option(None, "--input", "-i", help="Read documents from FILE ('-' = stdin)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write results to FILE (atomically) instead of stdout."
    ),
    fmt: Format = typer.Option(Format.pretty, "--format", "-f", help="Output format."),
    input_format: InputFormat = typer.Option(
        InputFormat.auto,
        "--input-format",
        help="Input lines are plain text or canonical JSONL (auto: by the first line).",
    ),
    lang: str | None = typer.Option(
        None,
        "--lang",
        "-l",
        help="ISO 639-1 language of documents that do not carry one (default: use every alias table).",
    ),
    bundle: Path | None = BUNDLE_OPT,
    top_k: int = typer.Option(30, "--top-k", min=1, help="Candidates per mention."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="NIL below this confidence (default: the bundle's).",
    ),
    given_spans: bool = typer.Option(
        False,
        "--given-spans",
        help="Link the mentions given in JSONL input (NED mode) instead of detecting them.",
    ),
    candidates: bool = typer.Option(
        False, "--candidates", help="Include every candidate with its scores (json/jsonl)."
    ),
    variant: str = typer.Option("fused", "--variant", help="Scoring: fused, prior, similarity, experts."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="ONNX Runtime intra-op threads."),
    providers: list[str] | None = typer.Option(
        None,
        "--provider",
        help="ONNX Runtime execution provider (repeatable); falls back to CPU with a warning.",
    ),
    max_chars: int = typer.Option(
        config.MAX_DOC_CHARS, "--max-chars", min=1, help="Refuse documents longer than this."
    ),
    verify: bool = typer.Option(False, "--verify", help="Check every bundle file's sha256 before linking."),
) -> None:
    """Link entity mentions to Wikidata. Results go to stdout (or -o); progress to stderr."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    sources = [s for s in (text is not None, input is not None) if s]
    if len(sources) != 1:
        raise InputError("Give either a TEXT argument or --input FILE (use '-' for stdin), not both or neither.")
    if text is not None and text != "-" and not text.strip():
        raise InputError("Empty text: nothing to link. Pass a non-empty TEXT, --input FILE or '-' for stdin.")
    linker = load_linker(
        bundle,
        providers=providers,
        threads=threads,
        verify=verify,
        variant=variant,
        top_k=top_k,
        threshold=threshold,
        max_chars=max_chars,
    )

    stream: IO[bytes] | None = None
    total = None
    if text is not None and text != "-":
        docs: Any = iter([{"id": None, "text": text, "lang": lang}])
        name = "argument"
    else:
        src = "-" if text == "-" else str(input)
        if src == "-":
            stream, name = sys.stdin.buffer, "stdin"
        else:
            path = Path(src)
            if not path.is_file():
                raise InputError(f"Input file {path} not found.")
            stream, name = open(path, "rb"), path.name  # noqa: SIM115 - closed below
            total = path.stat().st_size
        docs = read_documents(stream, input_format.value, name)

    errors = 0
    count = 0
    from rich.console import Console

    err_console = Console(stderr=True)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} docs"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=stream is None or not err_console.is_terminal,
    )
    to_terminal = output is None and sys.stdout.isatty()
    try:
        with output_stream(output) as out, progress:
            task = progress.add_task("linking", total=None if total is None else None)
            bad: dict[int, BadLine] = {}
            ordered: list[Any] = []

            def feed():
                for i, d in enumerate(docs):
                    if isinstance(d, BadLine):
                        bad[i] = d
                        ordered.append(d)
                        yield {"id": d.id, "text": "", "lang": lang}  # placeholder, replaced below
                    else:
                        ordered.append(d)
                        yield d

            if fmt == Format.tsv:
                out.write("doc_id\tstart\tend\tmention\tqid\tlabel\tscore\n")
            if fmt == Format.json:
                out.write("[")
            for i, res in enumerate(
                linker.link_batch(feed(), lang=lang, given_spans=given_spans, candidates=candidates)
            ):
                if i in bad:
                    res = DocResult(bad[i].id, lang, "", error=bad[i].error)
                count += 1
                if res.error:
                    errors += 1
                    if fmt != Format.pretty:
                        typer.echo(f"warning: document {res.id or count}: {res.error}", err=True)
                progress.update(task, advance=1)
                if fmt == Format.jsonl:
                    out.write(json.dumps(doc_record(res, candidates), ensure_ascii=False) + "\n")
                elif fmt == Format.json:
                    out.write(
                        ("," if i else "")
                        + "\n"
                        + json.dumps(doc_record(res, candidates), ensure_ascii=False, indent=2)
                    )
                elif fmt == Format.tsv:
                    if res.error:
                        out.write(f"{_tsv_escape(res.id)}\t\t\t\tERROR\t{_tsv_escape(res.error)}\t\n")
                    for lk in res.links:
                        out.write(
                            f"{_tsv_escape(res.id)}\t{lk.start}\t{lk.end}\t{_tsv_escape(lk.text)}\t"
                            f"{lk.qid or 'NIL'}\t{_tsv_escape(lk.label)}\t{lk.score:.4f}\n"
                        )
                else:
                    _write_pretty(out, res, to_terminal)
            if fmt == Format.json:
                out.write("\n]\n")
    finally:
        if stream is not None and stream is not sys.stdin.buffer:
            stream.close()
    if text is not None and text != "-" and errors:
        raise InputError(res.error or "linking failed")
    if errors:
        typer.echo(
            f'Error: {errors} of {count} documents could not be linked (see the "error" field '
            f"of each; the output has one record per input document).",
            err=True,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("link")(link_cli)
