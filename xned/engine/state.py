"""The user's state: analyst corrections, kept outside the bundle (which may be read-only,
e.g. the embedded default bundle inside site-packages).

Layout (``STATE`` = ``--state DIR``, else ``$XNED_STATE``, else the user data directory,
e.g. ``~/.local/share/xned`` on Linux)::

    STATE/bundles/<bundle id>/corrections.jsonl   one taught example per line
    STATE/bundles/<bundle id>/bundle.json         which bundle this is (for people)
    STATE/bundles/<bundle id>/.lock               serialises writers (several processes)

The bundle id is the sha256 of the bundle's ``manifest.json``: corrections made on one
bundle are never applied to another (a rebuilt or updated bundle starts with none; move
them with ``xned corrections export`` / ``import --any-bundle``).

A line is ``{"v": 1, "id", "time", "lang", "key", "mention", "qid", "context", "vector"}``:
``key`` is the normalised mention string, ``qid`` the taught entity (``null`` = NIL: not an
entity of the KB), ``vector`` the mention-in-context embedding as base64 little-endian
float16, ``context`` up to 200 characters around the mention (shown by ``list``). Every
write rewrites the file atomically (temp file, fsync, rename) under the lock, so a crash
leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from xned import jsonio
from xned.engine import layout as L
from xned.errors import InputError
from xned.fsutil import atomic_file
from xned.types import is_qid

FILE = "corrections.jsonl"
FORMAT_VERSION = 1
EXPORT_HEADER = "xned-corrections"
MAX_FILE_BYTES = 256 * 1024 * 1024  # a corrections file is read whole: bound it
LOCK_TIMEOUT = 30.0
CONTEXT_CHARS = 100  # each side of the mention in the stored context
_ID = re.compile(r"[0-9a-f]{12}")


class StateError(InputError):
    """A corrections file that cannot be read or written as it is."""


def state_dir(state: str | Path | None = None) -> Path:
    """``state``, else ``$XNED_STATE``, else the platform's user data directory."""
    if state is not None:
        return Path(state).expanduser()
    env = os.environ.get("XNED_STATE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("xned", appauthor=False))


def bundle_id(bundle_root: Path) -> str:
    """The identity corrections are keyed to: sha256 of the bundle's manifest.json."""
    return hashlib.sha256((Path(bundle_root) / L.MANIFEST).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Example:
    """One taught mention: its context vector and the entity it refers to (None = NIL)."""

    id: str
    time: str
    lang: str | None
    key: str
    mention: str
    qid: str | None
    context: str
    vector: np.ndarray  # float32 [dim]

    @staticmethod
    def make_id(key: str, qid: str | None, context: str, vector: np.ndarray) -> str:
        """Content-addressed: teaching or importing the same example twice keeps one."""
        h = hashlib.sha256(f"{key}\x1f{qid}\x1f{context}\x1f".encode())
        h.update(np.asarray(vector, "<f2").tobytes())
        return h.hexdigest()[:12]

    def to_json(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "id": self.id,
            "time": self.time,
            "lang": self.lang,
            "key": self.key,
            "mention": self.mention,
            "qid": self.qid,
            "context": self.context,
            "vector": base64.b64encode(np.asarray(self.vector, "<f2").tobytes()).decode("ascii"),
        }

    @classmethod
    def from_json(cls, obj: Any, where: str) -> Example:
        def bad(what: str) -> StateError:
            return StateError(f"{where}: {what}")

        if not isinstance(obj, dict) or obj.get("v") != FORMAT_VERSION:
            raise bad(f"not a version-{FORMAT_VERSION} correction record")
        strings = ("id", "time", "key", "mention", "context", "vector")
        for k in strings:
            if not isinstance(obj.get(k), str):
                raise bad(f"{k!r} must be a string")
        for k in ("lang", "qid"):
            if obj.get(k) is not None and not isinstance(obj.get(k), str):
                raise bad(f"{k!r} must be a string or null")
        if not _ID.fullmatch(obj["id"]):
            raise bad(f"id {obj['id'][:40]!r} is not 12 hex digits")
        if obj.get("qid") is not None and not is_qid(obj["qid"]):
            raise bad(f"qid {obj['qid'][:40]!r} is not a Wikidata item id (Q123)")
        if not obj["key"] or len(obj["key"]) > 1000 or len(obj["context"]) > 4 * CONTEXT_CHARS + 1000:
            raise bad("key or context is empty or too long")
        try:
            raw = base64.b64decode(obj["vector"], validate=True)
        except ValueError:
            raise bad("vector is not base64") from None
        if not raw or len(raw) % 2 or len(raw) > 2 * 8192:
            raise bad(f"vector of {len(raw)} bytes is not a float16 vector")
        vec = np.frombuffer(raw, "<f2").astype(np.float32)
        if not np.isfinite(vec).all():
            raise bad("vector holds non-finite values")
        return cls(obj["id"], obj["time"], obj.get("lang"), obj["key"], obj["mention"], obj.get("qid"),
                   obj["context"], vec)  # fmt: skip


class Store:
    """The corrections file of one bundle in one state directory."""

    def __init__(self, state: Path, ident: str):
        self.dir = Path(state) / "bundles" / ident
        self.path = self.dir / FILE
        self.ident = ident
        #: the lines of the last ``read`` that are no correction ("LINE: why"), and the lines
        #: themselves: skipped by the linker, kept in the file until ``forget --bad``
        self.problems: list[str] = []
        self._bad: list[bytes] = []

    def signature(self) -> tuple[int, int] | None:
        """(mtime_ns, size) of the file, None when there is none: a cheap change check."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def read(self) -> list[Example]:
        """Every readable stored example; a line that is no correction is skipped and named
        in ``problems`` (one bad line never costs the others). ``StateError`` only for a file
        over the size limit."""
        self.problems, self._bad = [], []
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size > MAX_FILE_BYTES:
            raise StateError(
                f"Corrections file {self.path} is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,}; remove it "
                f"(xned corrections forget --all --state {self.dir.parent.parent})."
            )
        examples, bad = parse_lines(self.path.read_bytes(), str(self.path))
        self.problems = [why for _, why in bad]
        self._bad = [raw for raw, _ in bad]
        return examples

    def problem_note(self) -> str:
        """What to say about ``problems``: how many, the first, and the remedy."""
        n = len(self.problems)
        return (
            f"{n} line(s) of {self.path} are not corrections and are skipped (first: {self.problems[0]}); "
            f"the others are used. Drop the bad lines with: xned corrections forget --bad "
            f"--state {self.dir.parent.parent}"
        )

    def update(self, change: Any, bundle_root: Path | None = None, *, drop_bad: bool = False) -> list[Example]:
        """Apply ``change(examples) -> examples`` under the lock and write the result
        atomically, the unreadable lines kept as they were unless ``drop_bad``; returns what
        was written."""

        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            with FileLock(str(self.dir / ".lock"), timeout=LOCK_TIMEOUT):
                new = change(self.read())
                with atomic_file(self.path, "wb") as f:
                    for ex in new:
                        f.write((json.dumps(ex.to_json(), ensure_ascii=False) + "\n").encode("utf-8"))
                    if not drop_bad:
                        f.writelines(raw + b"\n" for raw in self._bad)
                if bundle_root is not None and not (self.dir / "bundle.json").exists():
                    with atomic_file(self.dir / "bundle.json") as f:
                        json.dump({"bundle": str(bundle_root), "manifest_sha256": self.ident}, f, indent=1)
        except Timeout:
            raise StateError(
                f"Another xned process has held the lock on {self.dir} for {LOCK_TIMEOUT:.0f} s; "
                f"try again when it has finished."
            ) from None
        return new

    def clear(self) -> int:
        """Remove the corrections file (also when it is corrupted); returns the bytes removed."""

        if not self.path.exists():
            return 0
        with FileLock(str(self.dir / ".lock"), timeout=LOCK_TIMEOUT):
            size = self.path.stat().st_size
            self.path.unlink()
        return size


def parse_lines(data: bytes, where: str) -> tuple[list[Example], list[tuple[bytes, str]]]:
    """The examples of a corrections file, and each line that is none with the reason
    (``"WHERE line N: why"``), validated one record at a time."""
    out: list[Example] = []
    bad: list[tuple[bytes, str]] = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            obj = jsonio.loads(line)
        except jsonio.JSONError as exc:
            bad.append((line, f"{where} line {n} is not JSON ({exc})"))
            continue
        if isinstance(obj, dict) and obj.get(EXPORT_HEADER) is not None:
            continue  # the header line of an exported file
        try:
            out.append(Example.from_json(obj, f"{where} line {n}"))
        except StateError as exc:
            bad.append((line, str(exc)))
    return out, bad


def merge(old: list[Example], new: list[Example]) -> list[Example]:
    """``old`` then the examples of ``new`` not already there (by id), in order."""
    seen = {e.id for e in old}
    out = list(old)
    for e in new:
        if e.id not in seen:
            seen.add(e.id)
            out.append(e)
    return out


def encoder_id(bundle_root: Path) -> str | None:
    """The identity of a bundle's encoder: the sha256 its manifest records for the model."""
    try:
        files = jsonio.loads((Path(bundle_root) / L.MANIFEST).read_bytes()).get("files", {})
        return str(files["encoder/model.onnx"]["sha256"])
    except (OSError, jsonio.JSONError, KeyError, TypeError, AttributeError):
        return None


def export_lines(examples: list[Example], ident: str, encoder: str | None = None) -> str:
    head = {EXPORT_HEADER: FORMAT_VERSION, "bundle": ident, "encoder": encoder, "examples": len(examples)}
    return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in [head, *(e.to_json() for e in examples)])


def read_export(
    path: Path, ident: str, *, any_bundle: bool = False, encoder: str | None = None, dim: int | None = None
) -> tuple[list[Example], list[str]]:
    """The examples of an exported corrections file made on this bundle, and the lines left
    out with why (``StateError`` for a file of another bundle: vectors of another encoder
    mean nothing here; with ``any_bundle``, a file that names another ``encoder`` is still
    refused, and examples whose vectors are not ``dim`` long are left out)."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise StateError(f"{path} is {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} for a corrections file.")
    data = path.read_bytes()
    first = data.split(b"\n", 1)[0]
    try:
        head = jsonio.loads(first)
    except jsonio.JSONError:
        head = None
    if not isinstance(head, dict) or head.get(EXPORT_HEADER) != FORMAT_VERSION:
        raise StateError(f"{path} is not a corrections file written by xned corrections export.")
    if head.get("bundle") != ident and not any_bundle:
        raise StateError(
            f"{path} was exported from another bundle (manifest sha256 {str(head.get('bundle'))[:12]}..., this "
            f"bundle is {ident[:12]}...); its vectors come from that bundle's encoder. Import it into the "
            f"bundle it was made on, or pass --any-bundle if both bundles share one encoder."
        )
    theirs = head.get("encoder")
    if head.get("bundle") != ident and theirs and encoder and theirs != encoder:
        raise StateError(
            f"{path} was exported from a bundle with another encoder (model sha256 {str(theirs)[:12]}..., this "
            f"bundle's is {encoder[:12]}...): its context vectors cannot be compared with this bundle's. Teach "
            f"the same mentions again here (xned teach) instead."
        )
    examples, bad = parse_lines(data, str(path))
    problems = [why for _, why in bad]
    if dim is not None:
        problems += [f"{path}: correction {e.id} has a {len(e.vector)}-d vector, this encoder's are {dim}-d"
                     for e in examples if len(e.vector) != dim]  # fmt: skip
        examples = [e for e in examples if len(e.vector) == dim]
    return examples, problems
