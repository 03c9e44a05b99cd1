"""Bundle directory layout, manifest reading and validation.

A bundle is a directory::

    manifest.json         format version, languages, provenance, files (size + sha256)
    encoder/              model.onnx, tokenizer.json, config.json (pooling, prefixes)
    kb/                   entity store and per-language alias tables (see kb.py)
    experts/              per-mention-string word experts (optional)
    scoring.json          fusion weights and NIL threshold (optional)

See docs/reference/bundle-format.md for every file.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xned import jsonio
from xned.engine import layout as L
from xned.errors import BundleError
from xned.fsutil import atomic_write_bytes, sha256_file

FORMAT = "xned-bundle"
FORMAT_VERSION = 1
MANIFEST = L.MANIFEST
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
REBUILD_HINT = (
    "rebuild the bundle (xned kb build ... / xned export encoder ...) or reinstall xned for the default bundle"
)


@dataclass(frozen=True)
class Manifest:
    root: Path
    data: dict[str, Any]

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        return self.data.get("files", {})

    @property
    def languages(self) -> list[str]:
        return list(self.data.get("languages", []))


def read_json_object(
    path: Path, what: str, *, error: type[Exception] = BundleError, hint: str = REBUILD_HINT, max_bytes: int = 1 << 30
) -> dict[str, Any]:
    """The JSON object in ``path`` (a bundle file described as ``what``), or ``error`` naming
    the file: missing, larger than ``max_bytes``, not UTF-8 JSON, or not an object."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {path} is missing; {hint}.")
    if path.stat().st_size > max_bytes:
        raise error(f"{what} {path} is larger than {max_bytes} bytes; {hint}.")
    try:
        data = jsonio.loads(path.read_bytes())
    except jsonio.JSONError as exc:
        raise error(f"{path} is corrupted ({exc}); {hint}.") from None
    if not isinstance(data, dict):
        raise error(f"{path} must hold a JSON object; {hint}.")
    return data


def read_manifest(root: Path) -> Manifest:
    root = Path(root)
    if not root.is_dir():
        raise BundleError(
            f"Bundle directory not found: {root}. Pass --bundle DIR (a directory with a "
            f"manifest.json) or set XNED_BUNDLE."
        )
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path} is missing: {root} is not an xned bundle; {REBUILD_HINT}.")
    data = read_json_object(path, "Manifest", max_bytes=_MAX_MANIFEST_BYTES)
    if data.get("format") != FORMAT:
        raise BundleError(f'{path} is not an xned manifest (no "format": "{FORMAT}").')
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{path} has format_version {version!r}; this xned reads version "
            f"{FORMAT_VERSION}. Rebuild the bundle with this version of xned."
        )
    if not isinstance(data.get("files"), dict):
        raise BundleError(f'{path} has no "files" table; {REBUILD_HINT}.')
    return Manifest(root, data)


def check_files(manifest: Manifest, *, verify: bool = False, prefix: str = "") -> None:
    """Every listed file under ``prefix`` exists with the recorded size (and hash if
    ``verify``). Run on every load: one ``lstat`` per file and per directory, on strings
    (pathlib objects for the 2,451 files of the default bundle cost more than the syscalls)."""
    root = str(manifest.root)
    checked: set[str] = set()
    for rel, meta in manifest.files.items():
        if not rel.startswith(prefix):
            continue
        full, st = _confined_stat(root, rel, checked)
        if st is None or not stat.S_ISREG(st.st_mode):
            raise BundleError(f"Bundle file {full} is missing; {REBUILD_HINT}.")
        if st.st_size != meta.get("size"):
            raise BundleError(
                f"Bundle file {full} has {st.st_size} bytes, the manifest says {meta.get('size')}: "
                f"the file is truncated or was changed; {REBUILD_HINT}."
            )
        if verify and sha256_file(Path(full)) != meta.get("sha256"):
            raise BundleError(
                f"Bundle file {full} does not match its sha256 in the manifest: it is corrupted; {REBUILD_HINT}."
            )


def check_unlisted(manifest: Manifest) -> None:
    """Refuse a bundle holding a file or symlink its manifest does not list (hidden names,
    such as the temp files of an interrupted write, aside): the engine opens optional parts
    (``scoring.json``, ``experts/``, ``detector/``, the encoder, the KB's indexes) where they
    exist, so an unlisted one would be loaded unchecked, e.g. a planted ``scoring.json`` that
    changes every link or an encoder symlinked from outside. One directory scan per load."""
    root = str(manifest.root)
    listed = manifest.files
    dirs = {rel.rsplit("/", 1)[0] for rel in listed if "/" in rel}
    dirs |= {d.rsplit("/", i)[0] for d in list(dirs) for i in range(1, d.count("/") + 1)}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(f"{root}/{rel_dir}" if rel_dir else root))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_dir(follow_symlinks=False):
                stack.append(rel)
            elif rel in listed or rel == MANIFEST:
                continue
            elif entry.is_symlink() and rel in dirs:
                continue  # a symlinked directory of listed files: checked by check_files
            else:
                what = "symlink" if entry.is_symlink() else "file"
                raise BundleError(
                    f"Bundle {what} {root}/{rel} is not listed in {root}/{MANIFEST}, so it would be loaded "
                    f"unchecked; remove it (or rebuild the bundle with it); the bundle is not loaded."
                )


def confined(root: Path, rel: str, _checked: set[str] | None = None) -> Path:
    """``root / rel`` for a manifest path that stays inside the bundle: relative, no ``..``,
    and no symlink on the way (file or directory) leading out of it; otherwise
    ``BundleError`` (the bundle is untrusted). ``_checked`` caches directories already seen,
    so checking every file of a bundle costs one ``lstat`` per file and per directory."""
    full, _ = _confined_stat(str(root), rel, set() if _checked is None else _checked)
    return Path(full)


def _confined_stat(root: str, rel: str, checked: set[str]) -> tuple[str, os.stat_result | None]:
    """The path of ``rel`` under ``root`` and its ``stat`` (None if missing), after the
    checks of ``confined``."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or ".." in parts or Path(rel).is_absolute():
        raise BundleError(f"Manifest of {root} lists {rel!r}, a path outside the bundle; the bundle is not valid.")
    cur = root
    st: os.stat_result | None = None
    for i, part in enumerate(parts):
        cur = f"{cur}/{part}" if part else cur
        last = i == len(parts) - 1
        if not last and cur in checked:
            continue
        try:
            st = os.lstat(cur)
        except OSError:
            return f"{root}/{rel}", None  # missing: reported by the caller
        if stat.S_ISLNK(st.st_mode):
            if not Path(cur).resolve().is_relative_to(Path(root).resolve()):
                raise BundleError(f"Bundle file {cur} leads outside the bundle (a symlink); the bundle is not valid.")
            if last:
                try:
                    st = os.stat(cur)
                except OSError:
                    return cur, None
        if not last:
            checked.add(cur)
    return cur, st


def file_entries(root: Path, rels: Iterable[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for rel in sorted(rels):
        p = root / rel
        out[rel] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
    return out


def write_manifest(root: Path, data: dict[str, Any]) -> None:
    """Write ``manifest.json`` (files re-listed from disk, everything but the manifest)."""
    root = Path(root)
    rels = [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".incomplete")
    ]
    data = dict(data)
    data["format"] = FORMAT
    data["format_version"] = FORMAT_VERSION
    data["files"] = file_entries(root, rels)
    text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    atomic_write_bytes(root / MANIFEST, text.encode("utf-8"))


def bundle_stamp(root: Path) -> tuple[int, ...] | None:
    """What identifies the bundle's current contents cheaply: its manifest's inode, size and
    change time (every write of the bundle rewrites the manifest); None if unreadable."""
    try:
        st = (Path(root) / L.MANIFEST).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
