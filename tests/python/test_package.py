"""pip install . from a clean clone into a fresh virtual environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support.repo import REPO

pytestmark = pytest.mark.slow  # a clone and an isolated pip build: the full tier


def test_pip_install_from_a_clean_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    environment = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    result = subprocess.run([*pip, str(clone)], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr[-4000:]
    version = subprocess.run([str(venv / "bin" / "qatfold"), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("qatfold ")
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import qatfold, qatfold._core as c; print(qatfold.__version__, c.__doc__ != '')"],
        capture_output=True, text=True, check=True,
    )
    assert imported.stdout.split()[0] == version.stdout.split()[1]
    # The type stubs ship with the extension.
    stubs = list((venv / "lib").glob("python3*/site-packages/qatfold/_core.pyi"))
    assert stubs and "def fold_archive" in stubs[0].read_text()
