"""torchao's QAT patterns, exported once per test process.

prepare_qat_pt2e and convert_pt2e turn each of their small Conv+BN patterns
into an ATen graph with a strict torch.export of its own, every time they run:
about 110 exports and 13 s of a 16 s conversion on this machine, whatever
the model. The patterns are pure functions of their code, the values they
close over and the shapes of their example inputs, so the tests keep each
exported pattern and hand out a copy. Programs come out the same byte for
byte: test_fixtures.py regenerates every committed fixture through this and
compares it with the file the unpatched flow wrote.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch


def _key_of(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device.type, value.requires_grad)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_key_of(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _key_of(v)) for k, v in value.items())))
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    # Functions and modules the patterns close over (F.conv2d, ...): the same object.
    return ("object", id(value))


def _pattern_key(pattern: Callable, example_inputs: tuple, is_cuda: bool, kwargs: dict) -> Any:
    """What decides the exported pattern, or None for a pattern we cannot
    describe (exported every time, as torchao does)."""
    from torchao.quantization.pt2e.export_utils import WrapperModule

    function = pattern.fn if type(pattern) is WrapperModule else pattern
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    cells = tuple(_key_of(cell.cell_contents) for cell in (function.__closure__ or ()))
    return (code, cells, _key_of(example_inputs), is_cuda, _key_of(kwargs))


def install() -> None:
    """Memoizes torchao's _get_aten_graph_module_for_pattern where it is used."""
    from torchao.quantization.pt2e import qat_utils, utils

    original = utils._get_aten_graph_module_for_pattern
    if getattr(original, "_qatfold_memoized", False):
        return
    exported: dict[Any, torch.fx.GraphModule] = {}
    keep_alive: list[Any] = []  # the patterns whose ids are in keys stay alive

    def memoized(pattern: Callable, example_inputs: tuple, is_cuda: bool = False, **kwargs) -> torch.fx.GraphModule:
        key = _pattern_key(pattern, example_inputs, is_cuda, kwargs)
        if key is None:
            return original(pattern, example_inputs, is_cuda, **kwargs)
        if key not in exported:
            exported[key] = original(pattern, example_inputs, is_cuda, **kwargs)
            keep_alive.append((pattern, example_inputs, kwargs))
        return copy.deepcopy(exported[key])

    memoized._qatfold_memoized = True  # type: ignore[attr-defined]
    utils._get_aten_graph_module_for_pattern = memoized
    qat_utils._get_aten_graph_module_for_pattern = memoized
