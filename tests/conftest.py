from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_bundle"
SHARED = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _isolated_state(tmp_path_factory):
    """Corrections taught by tests go to a temporary state directory, never the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XNED_STATE", str(tmp_path_factory.mktemp("xned-state")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def bundle_path() -> Path:
    return FIXTURE


@pytest.fixture(scope="session")
def linker(bundle_path):
    from xned import Linker

    return Linker.load(bundle_path, threads=1)


@pytest.fixture()
def bundle_copy(tmp_path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(FIXTURE, dest)
    return dest


@pytest.fixture()
def built_bundle(tmp_path, bundle_path) -> Path:
    """A bundle built by ``kb build`` (its build recorded, so ``kb add`` and ``nil promote``
    can extend it) from one entity, with the fixture's encoder."""
    from xned.export.bundle_ops import build_kb_into_bundle

    bundle = tmp_path / "built"
    shutil.copytree(bundle_path / "encoder", bundle / "encoder")
    kb = tmp_path / "kb.tsv"
    kb.write_text(
        "#qid\ttype\ten_label\ten_description\tpopularity\tlabels\nQ90\tcity\tParis\tcapital of France\tpop:2\t\n"
    )
    build_kb_into_bundle([kb], bundle)
    return bundle


def shared_data(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is only on development machines)")
    return path
