"""The command-line options several commands share, defined once (help text, names, defaults)."""

from __future__ import annotations

import sys
import time
from types import ModuleType

import typer

from xned import config
from xned.errors import InputError
from xned.langs import normalize_lang


def parse_langs(value: str, option: str) -> list[str]:
    """Comma-separated language tags by the one rule of ``xned.langs`` ("EN" -> en, "pt-BR"
    -> pt), in order, each once; ``InputError`` naming a bad tag, or none given."""
    out: list[str] = []
    for tag in value.split(","):
        code = normalize_lang(tag)
        if code is not None and code not in out:
            out.append(code)
    if not out:
        raise InputError(f"Give at least one language with {option}, e.g. {option} en.")
    return out


def ray_integration() -> ModuleType:
    """``xned.integrations.ray`` for ``--engine ray``, or an error naming the extra to install."""
    try:
        import xned.integrations.ray as module
    except ImportError as exc:
        raise InputError(f"--engine ray needs the ray extra ({exc.name} is missing): pip install 'xned[ray]'") from None
    return module


def log_line(msg: str) -> None:
    """A progress line of a long command on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


BUNDLE_OPT = typer.Option(
    None, "--bundle", "-b", help="Bundle directory (default: $XNED_BUNDLE or the embedded bundle)."
)
STATE_OPT = typer.Option(
    None, "--state", help="Corrections state directory (default: $XNED_STATE or the user data directory)."
)
CORRECTIONS_OPT = typer.Option(
    True, "--corrections/--no-corrections", help="Apply the analyst's corrections of this bundle (xned teach)."
)
DETECTION_OPT = typer.Option(
    "auto",
    "--detection",
    help="How mentions are found when none are given: model (the bundle's trained detector), "
    "rules (alias-table matches), auto (the model where the bundle has one).",
)
THREADS_OPT = typer.Option(None, "--threads", min=1, help="ONNX Runtime intra-op threads per process.")
LANG_OPT = typer.Option(
    None,
    "--lang",
    "-l",
    help="Language of documents that do not carry one (es, pt-BR, zh-Hant ...; default: every alias table).",
)
TOP_K_OPT = typer.Option(30, "--top-k", min=1, help="Candidates per mention.")
THRESHOLD_OPT = typer.Option(
    None, "--threshold", min=0.0, max=1.0, help="NIL below this confidence (default: the bundle's)."
)
GIVEN_SPANS_OPT = typer.Option(
    False, "--given-spans", help="Link the mentions given in JSONL input (NED mode) instead of detecting them."
)
CANDIDATES_OPT = typer.Option(False, "--candidates", help="Include every candidate with its scores (json/jsonl).")
VARIANT_OPT = typer.Option("fused", "--variant", help="Scoring: fused, prior, similarity, experts.")
PROVIDER_OPT = typer.Option(
    None,
    "--provider",
    help="ONNX Runtime execution provider (repeatable; overrides --device); falls back to CPU with a warning.",
)
DEVICE_OPT = typer.Option(
    "cpu",
    "--device",
    help="Where the encoder runs: cpu, cuda, openvino, coreml, directml (the onnxruntime build that has it: "
    "see the install guide), or auto (an accelerator when there is one). Falls back to CPU with a warning.",
)
MAX_CHARS_OPT = typer.Option(config.MAX_DOC_CHARS, "--max-chars", min=1, help="Refuse documents longer than this.")
VERIFY_OPT = typer.Option(False, "--verify", help="Check every bundle file's sha256 before linking.")
NIL_IDS_OPT = typer.Option(
    False,
    "--nil-ids",
    help="Give every NIL mention a local identity (nil_id), the same for the same unknown entity across "
    "documents and runs (kept in the state directory; see xned nil).",
)
