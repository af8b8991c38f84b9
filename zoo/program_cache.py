"""Generated programs, built once and kept on disk between test runs.

QAT programs take seconds each to train, convert and export. A test asks
for one by a key and a builder; the archive is written under
build/test-programs/, named by the key and a digest of everything that
decides its content: the zoo modules that build programs, and the torch,
torchao and ExecuTorch versions. Editing a script or upgrading a package
makes a new digest, so a stale program is never used. `make clean` (or
deleting the folder) forgets them all.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("QATFOLD_PROGRAM_CACHE", REPO / "build" / "test-programs"))


def _digest() -> str:
    sha = hashlib.sha256()
    for script in sorted((REPO / "zoo").glob("*.py")):
        sha.update(script.name.encode())
        sha.update(script.read_bytes())
    for package in ("torch", "torchao", "executorch"):
        sha.update(f"{package}=={metadata.version(package)}".encode())
    return sha.hexdigest()[:16]


DIGEST = _digest()


def cached_archive(key: str, build: Callable[[], torch.export.ExportedProgram]) -> Path:
    """The path of the archive of `key`, building and saving it first if no
    archive of this key and digest exists. Writes are atomic (temp + rename),
    so parallel or interrupted runs never leave a partial archive."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    path = CACHE / f"{name}-{DIGEST}.pt2"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        torch.export.save(build(), temporary)
        os.replace(temporary, path)
    return path


def cadence_zoo_archive(case: str) -> Path:
    """The Cadence QAT archive of a zoo/models.py case ("residual"), or of
    its core-ATen form ("residual:decomposed"), shared by every test file."""

    def build() -> torch.export.ExportedProgram:
        from zoo.flows import export_qat_cadence
        from zoo.models import build as build_model

        name, _, variant = case.partition(":")
        model, example = build_model(name)
        program = export_qat_cadence(model, example)
        return program.run_decompositions() if variant == "decomposed" else program

    return cached_archive(f"cadence-{case}", build)
