"""xned bundle pack / unpack / verify: hand a bundle over as one archive."""

from __future__ import annotations

import io
import tarfile

import pytest
from typer.testing import CliRunner

from xned import Linker
from xned.cli.main import main


def _cli(*argv):
    runner = CliRunner()
    with runner.isolation() as (out, err, *_):
        code = main(list(argv))
        return code, out.getvalue().decode(), err.getvalue().decode()


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["b.tar", "b.tar.gz"])
def test_pack_unpack_roundtrip(bundle_copy, tmp_path, name):
    (bundle_copy / "notes.txt").write_text("not in the manifest")  # stays behind
    archive = tmp_path / name
    code, _, err = _cli("bundle", "pack", str(bundle_copy), "-o", str(archive))
    assert code == 0, err
    code, _, err = _cli("bundle", "unpack", str(archive), str(tmp_path / "laptop"))
    assert code == 0, err
    want = {k: v for k, v in _tree(bundle_copy).items() if k != "notes.txt"}
    assert _tree(tmp_path / "laptop") == want
    lk = Linker.load(tmp_path / "laptop", verify=True, use_corrections=False)
    assert lk.link("Tokyo", lang="en")[0].qid == "Q1490"
    code, out, _ = _cli("bundle", "verify", str(tmp_path / "laptop"))
    assert code == 0 and "match their sha256" in out
    code, _, err = _cli("bundle", "unpack", str(archive), str(tmp_path / "laptop"))
    assert code == 1 and "already exists" in err


def test_a_corrupted_archive_leaves_nothing(bundle_copy, tmp_path):
    archive = tmp_path / "b.tar"
    assert _cli("bundle", "pack", str(bundle_copy), "-o", str(archive))[0] == 0
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:  # flip one byte inside the largest member's data
        big = max(tar.getmembers(), key=lambda m: m.size)
    data[big.offset_data + big.size // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    code, _, err = _cli("bundle", "unpack", str(archive), str(tmp_path / "laptop"))
    assert code == 1 and "sha256" in err and big.name in err
    assert not (tmp_path / "laptop").exists() and not list(tmp_path.glob(".laptop*"))


def test_a_member_outside_the_bundle_is_refused(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    code, _, err = _cli("bundle", "unpack", str(archive), str(tmp_path / "x" / "laptop"))
    assert code == 1 and "'../escaped.txt'" in err and "refused" in err
    assert not (tmp_path / "x" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()


def test_verify_names_a_changed_file(bundle_copy):
    target = next(p for p in sorted((bundle_copy / "kb").rglob("*.npy")))
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    code, _, err = _cli("bundle", "verify", str(bundle_copy))
    assert code == 1 and target.name in err and "sha256" in err


def _crafted(tmp_path, bundle_copy, extra: dict[str, int], members: list[tuple[str, bytes | int]]):
    """A gzip archive of the fixture bundle whose manifest also lists ``extra`` (name -> size),
    followed by ``members`` (name, data or a count of zero bytes)."""
    import gzip
    import json

    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    for name, size in extra.items():
        manifest["files"][name] = {"size": size, "sha256": "0" * 64}
    archive = tmp_path / "crafted.tar.gz"
    with gzip.open(archive, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        for rel in sorted(json.loads((bundle_copy / "manifest.json").read_text())["files"]):
            tar.add(bundle_copy / rel, arcname=rel)
        for name, data in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, int):
                info.size = data
                tar.addfile(info, _Zeros(data))
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return archive


class _Zeros(io.RawIOBase):
    def __init__(self, n: int):
        self.left = n

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def test_unpack_refuses_an_archive_over_the_limit_before_writing(bundle_copy, tmp_path):
    archive = _crafted(tmp_path, bundle_copy, {"kb/huge.npy": 60_000_000}, [("kb/huge.npy", 60_000_000)])
    assert archive.stat().st_size < 2_000_000  # a small archive that expands 30 times
    code, _, err = _cli("bundle", "unpack", str(archive), str(tmp_path / "laptop"), "--max-gb", "0.02")
    assert code == 1 and "over the 0.02 GB limit" in err and "--max-gb" in err
    assert not (tmp_path / "laptop").exists() and not list(tmp_path.glob(".laptop*"))


@pytest.mark.parametrize(
    ("extra", "members", "words"),
    [
        ({"kb/x.npy": 10}, [("kb/x.npy", b"x" * 11)], "declared as 11 bytes"),
        ({"kb/x.npy": 3}, [("kb/x.npy", b"abc"), ("kb/x.npy", b"abc")], "twice"),
    ],
)
def test_unpack_refuses_members_that_disagree_with_the_manifest(bundle_copy, tmp_path, extra, members, words):
    archive = _crafted(tmp_path, bundle_copy, extra, members)
    code, _, err = _cli("bundle", "unpack", str(archive), str(tmp_path / "laptop"))
    assert code == 1 and words in err
    assert not (tmp_path / "laptop").exists() and not list(tmp_path.glob(".laptop*"))


def test_unpack_writes_only_listed_files(bundle_copy, tmp_path):
    archive = _crafted(tmp_path, bundle_copy, {}, [("scoring.json", b'{"bias": 99}'), ("kb/extra.bin", 5_000_000)])
    code, _, err = _cli("bundle", "unpack", str(archive), str(tmp_path / "laptop"))
    assert code == 0, err
    assert "2 file(s) the manifest does not list were left out" in err
    assert (
        not (tmp_path / "laptop" / "scoring.json").exists() and not (tmp_path / "laptop" / "kb" / "extra.bin").exists()
    )


@pytest.mark.parametrize("planted", ["scoring.json", "encoder-symlink"])
def test_a_file_the_manifest_does_not_list_is_never_loaded(bundle_copy, tmp_path, planted):
    from xned.errors import BundleError

    if planted == "scoring.json":
        (bundle_copy / "scoring.json").write_text('{"bias": 99}', encoding="utf-8")
        name = "scoring.json"
    else:  # a bundle without encoder entries, and an encoder symlinked in from outside
        import json
        import shutil

        outside = tmp_path / "outside-encoder"
        shutil.move(bundle_copy / "encoder", outside)
        manifest = json.loads((bundle_copy / "manifest.json").read_text())
        manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith("encoder/")}
        (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
        (bundle_copy / "encoder").symlink_to(outside, target_is_directory=True)
        name = "encoder"
    with pytest.raises(BundleError, match=f"{name} is not listed"):
        Linker.load(bundle_copy, use_corrections=False)
    code, _, err = _cli("bundle", "verify", str(bundle_copy))
    assert code == 1 and "not listed" in err
