"""``xned serve``: the web page and HTTP API (extra ``xned[serve]``)."""

from __future__ import annotations

from pathlib import Path

import typer

from xned.cli.options import BUNDLE_OPT, CORRECTIONS_OPT, DEVICE_OPT, NIL_IDS_OPT, STATE_OPT, THREADS_OPT
from xned.errors import InputError
from xned.runner import LinkOptions


def serve_cli(
    bundle: Path | None = BUNDLE_OPT,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; other than loopback needs --token."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, help="Server processes, each with the bundle loaded once."),
    token: str | None = typer.Option(
        None, "--token", envvar="XNED_TOKEN", help="Required as 'Authorization: Bearer TOKEN' on every request."
    ),
    threads: int | None = THREADS_OPT,
    device: str = DEVICE_OPT,
    max_body_mb: float = typer.Option(2.0, "--max-body-mb", min=0.001, help="Largest request body."),
    max_doc_chars: int = typer.Option(100_000, "--max-doc-chars", min=1, help="Longest document in a request."),
    max_documents: int = typer.Option(100, "--max-documents", min=1, help="Most documents in one request."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="Requests linked at once per process."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds before a request gets 504."),
    state: Path | None = STATE_OPT,
    use_corrections: bool = CORRECTIONS_OPT,
    nil_ids: bool = NIL_IDS_OPT,
) -> None:
    """Serve the analysts' web page at / and the HTTP API (POST /link, GET /info, /openapi.json)."""
    try:
        from xned.serve import check_bind, serve
        from xned.serve.app import Limits
    except ImportError as exc:
        raise InputError(
            f"xned serve needs the serve extra ({exc.name} is missing): pip install 'xned[serve]'"
        ) from None
    limits = Limits(
        max_body_bytes=int(max_body_mb * 1_000_000),
        max_documents=max_documents,
        max_doc_chars=max_doc_chars,
        concurrency=concurrency,
        timeout_s=timeout,
    )
    check_bind(host, token)  # before anything is printed
    typer.echo(f"xned serve: http://{host}:{port}/ (Ctrl+C stops)", err=True)
    options = LinkOptions(
        bundle=None if bundle is None else str(bundle),
        threads=threads,
        device=device,
        state=None if state is None else str(state),
        use_corrections=use_corrections,
        nil_ids=nil_ids,
    )
    serve(options, host=host, port=port, workers=workers, token=token, limits=limits)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cli)
