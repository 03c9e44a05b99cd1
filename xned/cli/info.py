"""``xned info``: describe a bundle."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from xned.cli.options import BUNDLE_OPT, STATE_OPT


def info_cli(
    bundle: Path | None = BUNDLE_OPT,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    verify: bool = typer.Option(False, "--verify", help="Check every file's sha256 against the manifest."),
    state: Path | None = STATE_OPT,
) -> None:
    """Print the bundle's manifest summary: languages, entity and alias counts, encoder, sizes."""
    from xned.engine.linker import Linker

    linker = Linker.load(bundle, verify=verify, state=state)
    info = linker.info()
    if as_json:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    typer.echo(f"bundle      {info['bundle']}" + (f"  ({info['name']})" if info.get("name") else ""))
    typer.echo(f"format      v{info['format_version']}, created by {info.get('created_by') or '?'}")
    typer.echo(
        f"files       {info['files']} files, {info['bytes'] / 1e6:.1f} MB" + ("  (sha256 verified)" if verify else "")
    )
    typer.echo(f"entities    {info['entities']:,}" + ("  (+ overlay from xned kb add)" if info["overlay"] else ""))
    typer.echo("aliases     " + ", ".join(f"{k}: {v:,}" for k, v in sorted(info["aliases"].items())))
    enc = info["encoder"]
    typer.echo(
        f"encoder     pooling={enc.get('pooling')} max_length={enc.get('max_length')} "
        f"prefixes={enc.get('query_prefix')!r}/{enc.get('passage_prefix')!r}"
    )
    if isinstance(enc.get("source"), dict):
        typer.echo(f"            source: {enc['source'].get('name', enc['source'])}")
    typer.echo(f"experts     {info['experts']:,}")
    det = info["detection"]
    typer.echo(
        "detection   alias-table matches (no trained detector)"
        if det == "rules"
        else f"detection   trained detector ({', '.join(det.get('source_langs') or [])}) fused with alias-table matches"
    )
    cor = info["corrections"]
    if cor is not None:
        typer.echo(
            f"corrections {cor['examples']:,} taught examples of {cor['keys']:,} mention strings in {cor['file']}"
            + (f"  (NOT APPLIED: {cor['error']})" if cor.get("error") else "")
        )
    sc = info["scoring"]
    typer.echo(
        f"scoring     threshold={sc['threshold']} weights=" + ", ".join(f"{k}={v:g}" for k, v in sc["weights"].items())
    )
    prov = info.get("provenance") or {}
    for k, v in prov.items():
        typer.echo(f"provenance  {k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)[:200]}")


def register(app: typer.Typer) -> None:
    app.command("info")(info_cli)
