"""``xned bundle unpack``: an archive is untrusted input, so nothing it says is believed before
it is checked.

The manifest is the first member (``bundle pack`` writes it first) and is read with a size
bound; it decides everything after it: only the files it lists are written (other members
are left out and named), each member must be a plain regular file whose declared size is the
listed size, no file is written twice, the listed total must fit ``max_bytes`` and the free
space of the destination's file system *before* anything is written, and every copy stops
at its listed size whatever the archive holds (a crafted gzip stream or a sparse member
cannot write more than the manifest declared). Members are written with ``O_EXCL |
O_NOFOLLOW`` inside a staging directory that becomes the bundle only after every file's
sha256 matches.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

from xned.engine.bundle import MANIFEST, check_files, read_manifest
from xned.errors import InputError
from xned.fsutil import replace_dir

#: the manifest member is read up to this many bytes
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
CHUNK = 1 << 20


def archive_mode(path: Path, write: bool) -> str:
    """The ``tarfile`` mode of a bundle archive, by its name (.tar, .tar.gz or .tgz)."""
    gz = path.name.endswith((".tar.gz", ".tgz"))
    if not gz and not path.name.endswith(".tar"):
        raise InputError(f"{path}: name the archive .tar, .tar.gz or .tgz.")
    return ("w:gz" if gz else "w") if write else ("r:gz" if gz else "r:")


def _plain(member: tarfile.TarInfo, archive: Path) -> bool:
    """True for a regular file to consider, False for a directory entry; refuses the rest."""
    parts = Path(member.name).parts
    if member.name.startswith("/") or ".." in parts or "\\" in member.name or not member.name:
        raise InputError(f"{archive} holds {member.name!r}, a path outside the bundle; refused.")
    if member.isdir():
        return False
    if not member.isreg() or member.issparse():
        raise InputError(f"{archive} holds {member.name!r}, which is not a plain file; refused.")
    return True


def _copy(src: tarfile.ExFileObject, dest: Path, size: int, archive: Path, name: str) -> None:
    """Copy at most ``size`` bytes; an archive that holds more or fewer is refused."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    written = 0
    with os.fdopen(fd, "wb") as out:
        while True:
            block = src.read(min(CHUNK, size - written + 1))
            if not block:
                break
            written += len(block)
            if written > size:
                raise InputError(f"{archive}: {name} holds more than the {size:,} bytes its manifest lists; refused.")
            out.write(block)
    if written != size:
        raise InputError(f"{archive}: {name} holds {written:,} bytes, its manifest lists {size:,}; copy it again.")


def unpack(archive: Path, dest: Path, *, max_bytes: int) -> list[str]:
    """Extract ``archive`` into the new directory ``dest`` (see the module docstring);
    returns the names of members left out because the manifest does not list them."""
    archive, dest = Path(archive), Path(dest)
    stage = dest.with_name(f".{dest.name}.unpacking-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    skipped: list[str] = []
    try:
        try:
            with tarfile.open(archive, archive_mode(archive, write=False)) as tar:  # type: ignore[call-overload]
                listed: dict[str, int] | None = None
                done: set[str] = set()
                for member in tar:
                    if not _plain(member, archive):
                        continue
                    name = Path(member.name).as_posix()
                    if listed is None:
                        if name != MANIFEST:
                            raise InputError(
                                f"{archive} does not start with {MANIFEST}: not written by xned bundle pack."
                            )
                        if member.size > MAX_MANIFEST_BYTES:
                            raise InputError(f"{archive}: {MANIFEST} of {member.size:,} bytes; refused.")
                        _copy(tar.extractfile(member), stage / MANIFEST, member.size, archive, MANIFEST)  # type: ignore[arg-type]
                        files = read_manifest(stage).files
                        listed = {rel: int(meta.get("size", -1)) for rel, meta in files.items()}
                        total = sum(listed.values())
                        free = shutil.disk_usage(stage).free
                        if total > max_bytes:
                            raise InputError(
                                f"{archive} would write {total / 1e9:.2f} GB, over the {max_bytes / 1e9:.2f} GB "
                                f"limit; pass --max-gb to allow more."
                            )
                        if total > free:
                            raise InputError(
                                f"{archive} would write {total / 1e9:.2f} GB; {dest.parent} has "
                                f"{free / 1e9:.2f} GB free."
                            )
                        continue
                    if name not in listed:
                        skipped.append(name)
                        continue
                    if name in done:
                        raise InputError(f"{archive} holds {name} twice; refused.")
                    if member.size != listed[name]:
                        raise InputError(
                            f"{archive}: {name} is declared as {member.size:,} bytes, its manifest lists "
                            f"{listed[name]:,}; refused."
                        )
                    _copy(tar.extractfile(member), stage / name, listed[name], archive, name)  # type: ignore[arg-type]
                    done.add(name)
                if listed is None:
                    raise InputError(f"{archive} holds no {MANIFEST}: not written by xned bundle pack.")
        except (tarfile.TarError, EOFError) as exc:
            raise InputError(f"{archive} cannot be read as a bundle archive ({exc}); copy it again.") from None
        except OSError as exc:
            raise InputError(f"{archive} cannot be unpacked ({exc.strerror or exc}).") from None
        check_files(read_manifest(stage), verify=True)  # every listed file present, sha256 included
        replace_dir(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return skipped
