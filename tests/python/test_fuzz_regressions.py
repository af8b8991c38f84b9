"""The fuzz regression corpus (tests/corpus/fuzz): one committed input per past
reader fix, each as fuzz/make_regressions.py builds it, and each rejected by
the command line with one line naming the file, exit 1 and no output."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fuzz import make_regressions
from support.repo import REPO, run_cli

CORPUS = REPO / "tests" / "corpus" / "fuzz"


GENERATOR = make_regressions
ROWS = GENERATOR.REGRESSIONS


def test_every_reader_fix_has_its_committed_input_and_nothing_else_is_there():
    assert len(ROWS) >= 15
    committed = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*"))
    assert committed == sorted(f"{target}/{name}" for target, name, *_ in ROWS)
    assert {commit for _, _, commit, _, _ in ROWS} >= {"7e92a6e", "28a4c45", "4d6e525", "2982c31", "47118ae"}


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}/{r[1]}" for r in ROWS])
def test_committed_input_is_what_the_generator_builds(row):
    target, name, _, _, build = row
    assert (CORPUS / target / name).read_bytes() == build()


def _as_archive(target: str, data: bytes, path: Path) -> Path:
    """The input as a whole archive: the stored fixture with the record the
    fuzz target replaces swapped for it."""
    if target == "zip_reader":
        path.write_bytes(data)
        return path
    replaced = GENERATOR.MODEL if target == "model_json" else GENERATOR.CONFIG
    with zipfile.ZipFile(GENERATOR.STORED) as source, zipfile.ZipFile(path, "w") as out:
        for info in source.infolist():
            out.writestr(info, data if info.filename == replaced else source.read(info))
    return path


@pytest.mark.parametrize("row", ROWS, ids=[f"{r[0]}/{r[1]}" for r in ROWS])
def test_the_command_line_rejects_it_with_one_line(row, tmp_path):
    target, name, _, _, build = row
    archive = _as_archive(target, build(), tmp_path / f"{name}.pt2")
    before = archive.read_bytes()
    out = tmp_path / "out.pt2"
    result = run_cli("fold", str(archive), "-o", str(out), check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith(f"qatfold: error: {archive}: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert not out.exists() and archive.read_bytes() == before
