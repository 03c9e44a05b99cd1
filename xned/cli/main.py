"""Entry point: ``xned`` with subcommands; library errors become ``Error: ...`` + exit 1."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import NoReturn

import typer

from xned import __version__
from xned.errors import XnedError

app = typer.Typer(
    name="xned",
    help="Offline cross-lingual entity linking to Wikidata. Add --debug to any command for tracebacks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xned {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """xned links entity mentions in any language to English Wikidata entities."""


def _register() -> None:
    from xned.cli import bench, bundle, corrections, detector, evaluate, experts, export, info, kb, link, nil, serve

    link.register(app)
    serve.register(app)
    info.register(app)
    kb.register(app)
    bench.register(app)
    export.register(app)
    evaluate.register(app)
    experts.register(app)
    detector.register(app)
    corrections.register(app)
    nil.register(app)
    bundle.register(app)


_register()


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: what a command keeps on interruption (``-o``'s partial
    output, a build's transaction rollback) it keeps on ``kill`` too; exit status 143."""


_terminated = threading.Event()


def _on_sigterm(signum: int, frame: object) -> None:
    _terminated.set()  # typer turns the interruption into Exit(130): remember what it was
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    installed = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if installed else None
    try:
        return _main(argv)
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _debug_flag(args: list[str]) -> tuple[list[str], bool]:
    """``--debug`` is a global flag: taken wherever it stands among the options of any
    command, but not after ``--``, where every word is an argument (``xned link -- --debug``
    links the text "--debug")."""
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a != "--debug"]
    return head + args[end:], len(head) < end


def _main(argv: list[str] | None) -> int:
    args, debug = _debug_flag(list(sys.argv[1:] if argv is None else argv))
    debug = debug or bool(os.environ.get("XNED_DEBUG"))
    try:
        rv = app(args=args, prog_name="xned", standalone_mode=False)
    except typer.Exit as exc:
        rv = int(getattr(exc, "exit_code", 0) or 0)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        return 1
    except Terminated:
        typer.echo("Terminated.", err=True)
        return 143
    except KeyboardInterrupt:
        typer.echo("Interrupted.", err=True)
        return 130
    except XnedError as exc:
        if debug:
            raise
        typer.echo(f"Error: {exc}", err=True)
        return 1
    except OSError as exc:
        if debug:
            raise
        typer.echo(f"Error: {exc.strerror or exc} ({exc.filename or ''})".replace(" ()", ""), err=True)
        return 1
    except Exception as exc:  # last resort: never a bare traceback without --debug
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # usage errors from typer's click
            exc.show()
            return int(exc.exit_code)
        if debug:
            raise
        typer.echo(
            f"Error: unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback)",
            err=True,
        )
        return 1
    code = rv if isinstance(rv, int) else 0
    if code == 130:  # typer turns an interruption into exit status 130
        typer.echo("Terminated." if _terminated.is_set() else "Interrupted.", err=True)
        return 143 if _terminated.is_set() else 130
    return code


def entry() -> None:
    """The ``xned`` console script: ``main`` then a fast exit."""
    exit_fast(main())


#: seconds an interrupted command waits for each of its threads before it exits anyway
INTERRUPTED_JOIN_S = 5.0


def exit_fast(code: int) -> NoReturn:
    """End the process the way a normal exit would, minus the interpreter's teardown.

    Non-daemon threads are joined and the ``atexit`` handlers run (logging, multiprocessing
    and Ray shutdown, temporary directories), the standard streams are flushed, then
    ``os._exit``. What is skipped is the freeing of every object: dropping the tokenizer's
    180k-piece model alone takes 0.25 s, the whole teardown 0.4-0.5 s of a 2.2 s one-shot
    ``xned link``. Under a tracer or profiler (coverage, pyinstrument) the normal exit is
    kept, so they can write their reports."""
    if sys.gettrace() is not None or sys.getprofile() is not None:
        sys.exit(code)
    # after Ctrl-C or SIGTERM the worker processes were already ended; a pool's manager
    # thread can still wait on them (a race in concurrent.futures under load): bounded
    patience = INTERRUPTED_JOIN_S if code in (130, 143) else None
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(patience)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe: Python's own exit says 120 then
            code = code or 120
    os._exit(code)


if __name__ == "__main__":  # ``python -m xned.cli.main``: the same exit as the script
    entry()
