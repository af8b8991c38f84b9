"""Every code block the README and docs/ mark as runnable (```python
runnable, ```sh runnable) runs as written, from a folder where `build/` and
`tests/` are the repository's (so a block names the built CLI and the
fixtures as a reader in the checkout would) and files it writes land in a
temporary folder. The docs' size limit is checked here too."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.repo import REPO, cli_path

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(python|sh) runnable\n(.*?)^```$", re.S | re.M)


def blocks() -> list[tuple[str, str, str]]:
    found = []
    for document in DOCUMENTS:
        for index, match in enumerate(BLOCK.finditer(document.read_text())):
            found.append((f"{document.relative_to(REPO)}#{index}", match.group(1), match.group(2)))
    return found


def test_the_readme_is_a_front_page():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
    for name in ("usage", "design", "measurements", "developing"):
        assert (REPO / "docs" / f"{name}.md").is_file(), name
    assert any(kind == "python" for _, kind, _ in blocks()) and any(kind == "sh" for _, kind, _ in blocks())


@pytest.mark.parametrize("where, kind, code", blocks(), ids=[b[0] for b in blocks()])
def test_runnable_blocks_run(tmp_path, where, kind, code):
    (tmp_path / "tests").symlink_to(REPO / "tests")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "qatfold").symlink_to(cli_path())
    if kind == "python":
        command = [sys.executable, "-c", code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert run.returncode == 0, f"{where} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert not any(p.is_symlink() and not p.exists() for p in Path(tmp_path).iterdir())
