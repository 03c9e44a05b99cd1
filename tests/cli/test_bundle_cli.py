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
