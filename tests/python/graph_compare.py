"""Comparing exported programs the way the acceptance criteria state it."""

from __future__ import annotations

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


def assert_same_graph(a: torch.export.ExportedProgram, b: torch.export.ExportedProgram, with_meta: bool = True) -> None:
    nodes_a = [node_signature(n, with_meta) for n in a.graph.nodes]
    nodes_b = [node_signature(n, with_meta) for n in b.graph.nodes]
    assert len(nodes_a) == len(nodes_b)
    for x, y in zip(nodes_a, nodes_b):
        assert x == y


def _bytes_of(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes: bit-exact equality, NaNs and -0.0 included."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def assert_same_tensors(a: dict, b: dict, ordered: bool = True) -> None:
    if ordered:
        assert list(a.keys()) == list(b.keys())
    else:
        assert sorted(a.keys()) == sorted(b.keys())
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride(), key
            assert torch.equal(_bytes_of(x), _bytes_of(y)), key


def op_targets(program: torch.export.ExportedProgram) -> list[str]:
    return [str(n.target) for n in program.graph.nodes if n.op == "call_function"]


def random_inputs(program: torch.export.ExportedProgram, seed: int = 0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    args, _ = program.example_inputs
    return tuple(torch.randn(a.shape, generator=generator, dtype=a.dtype) for a in args)
