"""Shared helpers for the Python tests: paths, the CLI, archive comparison."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(REPO / "scripts"))

warnings.filterwarnings("ignore")

# `make test` runs pytest on two workers (pytest-xdist), one per core: each
# keeps to one torch thread so they do not oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)

# Loading quantized programs needs the quantized_decomposed ops registered.
# torchao's QAT patterns are exported once per process, not once per
# conversion (pattern_cache.py says why that changes no program).
import pattern_cache  # noqa: E402
import torchao.quantization.pt2e.quantize_pt2e  # noqa: E402,F401

pattern_cache.install()

# Every fold the tests make in memory also passes FX's lint of the replayed
# graph (qatfold._fx.LINT_AFTER_REPLAY).
import qatfold._fx  # noqa: E402

qatfold._fx.LINT_AFTER_REPLAY = True


def cli_path() -> str:
    return os.environ.get("QATFOLD_CLI", str(REPO / "build" / "qatfold"))


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([cli_path(), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"qatfold {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.pt2"))


@pytest.fixture(params=FIXTURE_NAMES)
def fixture_path(request) -> Path:
    return FIXTURES / request.param
