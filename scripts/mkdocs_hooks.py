"""MkDocs hooks: reference pages generated from the code at build time, so they cannot drift.

- ``<!-- xned:cli -->``: every ``xned`` command with its usage, help and options, walked from
  the Typer app (``xned.cli.main.app``);
- ``<!-- xned:http -->``: every endpoint of the HTTP API from its OpenAPI schema
  (``xned.serve.openapi.OPENAPI``), the one ``GET /openapi.json`` serves;
- ``<!-- xned:changelog -->``: ``CHANGELOG.md`` of the repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def cli_reference() -> str:
    import click
    import typer

    from xned.cli.main import app

    root = typer.main.get_command(app)
    out: list[str] = []

    def walk(cmd: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = click.Context(cmd, info_name=path[-1], parent=parent)
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.list_commands(ctx)):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, [*path, name], ctx)
            return
        title = " ".join(path)
        out.append(f"## `{title}`\n")
        out.append(f"```\n{cmd.get_usage(ctx).replace('Usage: ', '')}\n```\n")
        if cmd.help:
            out.append(cmd.help.strip().replace("\b\n", "") + "\n")
        rows = []
        for p in cmd.params:
            if isinstance(p, click.Argument):
                rows.append((p.human_readable_name, "argument" + (", required" if p.required else ""), ""))
            elif isinstance(p, click.Option) and not p.hidden:
                names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                default = p.default if p.show_default is not False and p.default not in (None, False, ()) else ""
                rows.append((names, _cell(p.help or ""), _cell(default)))
        if rows:
            out.append("| option | meaning | default |\n|---|---|---|")
            out.extend(f"| {a} | {b} | {c} |" for a, b, c in rows)
            out.append("")

    walk(root, ["xned"], None)
    return "\n".join(out)


def http_reference() -> str:
    from xned.serve.openapi import OPENAPI

    out: list[str] = []
    for path, methods in OPENAPI["paths"].items():
        for method, op in methods.items():
            out.append(f"## `{method.upper()} {path}`\n")
            if op.get("summary"):
                out.append(op["summary"].strip() + "\n")
            if op.get("description"):
                out.append(op["description"].strip() + "\n")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                out.append("Request body (JSON schema):\n")
                out.append("```json\n" + json.dumps(body, indent=2) + "\n```\n")
            for status, resp in op.get("responses", {}).items():
                out.append(f"- **{status}**: {_cell(resp.get('description', ''))}")
            out.append("")
    schemas = OPENAPI.get("components", {}).get("schemas", {})
    if schemas:
        out.append("## Schemas\n")
        for name, schema in schemas.items():
            out.append(f"### `{name}`\n\n```json\n{json.dumps(schema, indent=2)}\n```\n")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- xned:cli -->" in markdown:
        markdown = markdown.replace("<!-- xned:cli -->", cli_reference())
    if "<!-- xned:http -->" in markdown:
        markdown = markdown.replace("<!-- xned:http -->", http_reference())
    if "<!-- xned:changelog -->" in markdown:
        text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
        text = text.split("\n", 1)[1].replace("](docs/", "](")  # its own title out; links from the site
        markdown = markdown.replace("<!-- xned:changelog -->", text)
    return markdown
