"""The repository's paths, the CLI under test, and the programs several test
files share."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.glob("*.pt2"))

# The committed Cadence QAT fixture: two conv + BatchNorm chains.
QAT = FIXTURES / "qat_cadence_cnn.pt2"


def cli_path() -> str:
    return os.environ.get("QATFOLD_CLI", str(REPO / "build" / "qatfold"))


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([cli_path(), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"qatfold {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


def clipping_program() -> torch.export.ExportedProgram:
    """The QAT fixture with a running_mean far from the data: the folded shift
    pushes the conv's outputs past the range its quantization was calibrated
    for, so they saturate after folding and did not before."""
    program = torch.export.load(QAT)
    program.state_dict["bn1.running_mean"].fill_(-40.0)
    return program
