"""`make wheel` (scripts/build_wheel.sh) gives a manylinux wheel that
installs where Debian's libsimdjson is not: installed into a fresh virtual
environment, its extension and its CLI resolve simdjson from the copy the
wheel carries (ldd, not a library path that could hide the system's), and
the CLI folds a fixture byte for byte as the build tree's CLI does."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support.repo import FIXTURES, REPO, run_cli

pytestmark = pytest.mark.slow  # builds and installs a wheel


def resolved(binary: Path) -> dict[str, str]:
    """ldd's name -> path of each shared library `binary` loads."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        if arrow:
            found[name] = rest.split(" (")[0]
    return found


def test_the_wheel_installs_in_a_fresh_venv_and_carries_simdjson(tmp_path):
    build = subprocess.run(["bash", str(REPO / "scripts" / "build_wheel.sh"), str(tmp_path / "dist")],
                           capture_output=True, text=True, cwd=REPO)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = Path(build.stdout.strip().splitlines()[-1])
    assert "-manylinux_" in wheel.name and wheel.name.endswith("_x86_64.whl"), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("qatfold.libs/libsimdjson") for n in names), names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # pip from this environment installs into the fresh one (no index: offline).
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    core = next((site / "qatfold").glob("_core*.so"))
    for binary in (core, site / "qatfold.scripts" / "qatfold"):
        simdjson = [path for name, path in resolved(binary).items() if name.startswith("libsimdjson")]
        assert len(simdjson) == 1, (binary, resolved(binary))
        assert Path(simdjson[0]).resolve().parent == (site / "qatfold.libs").resolve(), simdjson

    fixture = FIXTURES / "qat_cadence_cnn.pt2"
    installed = subprocess.run([str(venv / "bin" / "qatfold"), "fold", str(fixture), "-o", str(tmp_path / "w.pt2")],
                               capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    run_cli("fold", str(fixture), "-o", str(tmp_path / "b.pt2"))
    assert (tmp_path / "w.pt2").read_bytes() == (tmp_path / "b.pt2").read_bytes()
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import qatfold; print(qatfold.__version__)"],
                             capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == run_cli("--version").stdout.split()[-1], version
