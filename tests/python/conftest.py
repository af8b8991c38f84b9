"""The test session's set-up (torch threads, quantized ops, the QAT pattern
cache, FX lint after replay) and the fixture_path fixture. Helpers live in
support/."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from support.repo import FIXTURE_NAMES, FIXTURES

warnings.filterwarnings("ignore")

# `make test` runs pytest on two workers (pytest-xdist), one per core: each
# keeps to one torch thread so they do not oversubscribe the cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)

# Loading quantized programs needs the quantized_decomposed ops registered.
# torchao's QAT patterns are exported once per process, not once per
# conversion (pattern_cache.py says why that changes no program).
import torchao.quantization.pt2e.quantize_pt2e  # noqa: E402,F401

from support import pattern_cache  # noqa: E402

pattern_cache.install()

# Every fold the tests make in memory also passes FX's lint of the replayed
# graph (qatfold._fx.LINT_AFTER_REPLAY).
import qatfold._fx  # noqa: E402

qatfold._fx.LINT_AFTER_REPLAY = True


@pytest.fixture(params=FIXTURE_NAMES)
def fixture_path(request) -> Path:
    return FIXTURES / request.param
