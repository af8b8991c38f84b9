"""Comparing exported programs the way the acceptance criteria state it."""

from __future__ import annotations

import math
import re

import torch

# Metadata that torch derives from the environment, not the program.
_VOLATILE_META = {"stack_trace", "source_fn_stack", "from_node", "seq_nr", "torch_fn"}


def node_signature(node: torch.fx.Node, with_meta: bool = True) -> tuple:
    meta = {}
    if with_meta:
        for key in ("nn_module_stack", "stack_trace", "torch_fn"):
            if key in node.meta:
                meta[key] = repr(node.meta[key])
    val = node.meta.get("val")
    spec = (tuple(val.shape), val.dtype) if isinstance(val, torch.Tensor) else None
    return (node.op, str(node.target), repr(node.args), repr(node.kwargs), node.name, spec, tuple(sorted(meta.items())))


_FLOAT = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


def _close_floats(x: str, y: str, rel: float) -> bool:
    """`x` and `y` are the same text but for float literals within `rel`."""
    if _FLOAT.sub("#", x) != _FLOAT.sub("#", y):
        return False
    return all(math.isclose(float(p), float(q), rel_tol=rel, abs_tol=1e-30)
               for p, q in zip(_FLOAT.findall(x), _FLOAT.findall(y)))


def assert_same_graph(a: torch.export.ExportedProgram, b: torch.export.ExportedProgram, with_meta: bool = True,
                      float_rel: float = 0.0) -> None:
    """Node for node the same. With `float_rel`, float arguments (scales) may
    differ by that relative amount; everything else must match exactly."""
    nodes_a = [node_signature(n, with_meta) for n in a.graph.nodes]
    nodes_b = [node_signature(n, with_meta) for n in b.graph.nodes]
    assert len(nodes_a) == len(nodes_b)
    for x, y in zip(nodes_a, nodes_b):
        if float_rel and x != y:
            assert x[:2] == y[:2] and x[4:] == y[4:], (x, y)
            assert _close_floats(x[2], y[2], float_rel) and _close_floats(x[3], y[3], float_rel), (x, y)
        else:
            assert x == y


def _bytes_of(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes: bit-exact equality, NaNs and -0.0 included."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def assert_same_tensors(a: dict, b: dict, ordered: bool = True, float_rel: float = 0.0,
                        float_abs: float = 1e-8) -> None:
    """Same keys, dtypes, shapes and strides, and bit-identical values; with
    `float_rel`, float values within that relative amount (or `float_abs`) and
    integer values (quantized weights) within one step."""
    if ordered:
        assert list(a.keys()) == list(b.keys())
    else:
        assert sorted(a.keys()) == sorted(b.keys())
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride(), key
            if float_rel and not torch.equal(_bytes_of(x), _bytes_of(y)):
                if x.is_floating_point():
                    assert torch.allclose(x, y, rtol=float_rel, atol=float_abs), key
                else:
                    assert (x.long() - y.long()).abs().max() <= 1, key
            else:
                assert torch.equal(_bytes_of(x), _bytes_of(y)), key


def op_targets(program: torch.export.ExportedProgram) -> list[str]:
    return [str(n.target) for n in program.graph.nodes if n.op == "call_function"]


def random_inputs(program: torch.export.ExportedProgram, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    args, _ = program.example_inputs
    return tuple(torch.randn(a.shape, generator=generator, dtype=a.dtype) for a in args)
