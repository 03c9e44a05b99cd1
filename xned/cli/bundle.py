"""``xned bundle pack|unpack|verify``: hand a built bundle over to the laptops.

``pack`` writes the manifest and every file it lists (nothing else) into one tar archive
(gzip-compressed when the name ends in ``.tar.gz``/``.tgz``); ``unpack`` extracts an archive
into a new directory, refusing any member that is not a regular file or directory inside
it, then checks every file's size and sha256 against the manifest before the directory
appears under its name; ``verify`` checks a bundle in place.
"""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import typer

from xned.errors import InputError

bundle_app = typer.Typer(help="Pack a bundle into one archive, unpack and verify it (for offline hand-over).")


@bundle_app.command("pack")
def pack_cli(
    bundle: Path = typer.Argument(..., help="Bundle directory."),
    output: Path = typer.Option(..., "--output", "-o", help="Archive to write (.tar, .tar.gz or .tgz)."),
) -> None:
    """Write BUNDLE's manifest and the files it lists into one archive (sizes checked)."""
    from xned.engine.bundle import MANIFEST, check_files, confined, read_manifest
    from xned.fsutil import atomic_file

    manifest = read_manifest(bundle)
    check_files(manifest)  # a bundle that does not load is not packed
    from xned.export.bundle_archive import archive_mode

    mode = archive_mode(output, write=True)
    t0 = time.perf_counter()
    with atomic_file(output, "wb") as f, tarfile.open(fileobj=f, mode=mode) as tar:  # type: ignore[call-overload]
        tar.add(bundle / MANIFEST, arcname=MANIFEST, recursive=False)
        for rel in sorted(manifest.files):
            tar.add(confined(bundle, rel), arcname=rel, recursive=False)
    size = output.stat().st_size
    typer.echo(
        f"Packed {len(manifest.files)} files of {bundle} into {output} ({size / 1e6:.1f} MB, "
        f"{time.perf_counter() - t0:.1f} s). Unpack with: xned bundle unpack {output.name} DIR",
        err=True,
    )


#: ``bundle unpack`` refuses an archive whose manifest declares more bytes than this
DEFAULT_MAX_UNPACK_GB = 256.0


@bundle_app.command("unpack")
def unpack_cli(
    archive: Path = typer.Argument(..., help="Archive written by xned bundle pack."),
    dest: Path = typer.Argument(..., help="New directory for the bundle (must not exist)."),
    max_gb: float = typer.Option(
        DEFAULT_MAX_UNPACK_GB, "--max-gb", min=0.001, help="Refuse an archive that would write more than this (GB)."
    ),
) -> None:
    """Extract ARCHIVE into DEST and verify every file's sha256 before DEST appears. Only the
    files its manifest lists are written, each at most its listed size; the total is checked
    against --max-gb and the free disk space before anything is written."""
    from xned.export.bundle_archive import unpack

    if not archive.is_file():
        raise InputError(f"Archive {archive} not found.")
    if dest.exists():
        raise InputError(f"{dest} already exists; unpack into a new directory.")
    skipped = unpack(archive, dest, max_bytes=int(max_gb * 1e9))
    note = (
        f" ({len(skipped)} file(s) the manifest does not list were left out: {', '.join(skipped[:3])})"
        if skipped
        else ""
    )
    typer.echo(f"Unpacked and verified {dest}{note}. Use it with: xned link ... --bundle {dest}", err=True)


@bundle_app.command("verify")
def verify_cli(bundle: Path = typer.Argument(..., help="Bundle directory.")) -> None:
    """Check every file of BUNDLE against the sha256 in its manifest."""
    from xned.engine.bundle import check_files, check_unlisted, read_manifest

    manifest = read_manifest(bundle)
    t0 = time.perf_counter()
    check_files(manifest, verify=True)
    check_unlisted(manifest)
    typer.echo(f"{bundle}: {len(manifest.files)} files match their sha256 ({time.perf_counter() - t0:.1f} s).")


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
