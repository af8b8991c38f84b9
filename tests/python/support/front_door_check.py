"""The in-memory path (qatfold.fold through the FX front door) must give
what the archive path (the CLI) gives. Every test that folds an archive with
the CLI checks it through ``folded_both_ways``: the same op multiset, the
same state_dict and constants keys with bit-identical tensors, identical
outputs, a program torch can save and load again, an input program the
in-memory fold did not touch, and before all that, the C++ describer's
graph of the live program equal to the archive reader's graph of its file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

import qatfold
from support.graph_compare import random_inputs
from support.repo import run_cli


def _options(extra: tuple[str, ...]) -> dict[str, str]:
    """CLI fold flags as the Python keywords the same table makes."""
    by_flag = {row["cli_flag"]: name for name, row in qatfold._api.FOLD_OPTIONS.items()}
    options, i = {}, 0
    while i < len(extra):
        if extra[i] in by_flag:
            options[by_flag[extra[i]]] = extra[i + 1]
            i += 2
        else:
            i += 1
    return options


def ops(program) -> Counter:
    return Counter(str(n.target) for n in program.graph.nodes if n.op == "call_function")


def tensors(program) -> dict[str, torch.Tensor]:
    return {**program.state_dict, **{k: v for k, v in program.constants.items() if isinstance(v, torch.Tensor)}}


def assert_described_as_read(program, path: Path) -> None:
    """The C++ describer reads the live program (python/fx_describe.h) into
    the graph the archive reader makes of its saved archive: the same text,
    but for the program-wide lines only a record has (its verifiers and the
    ranges of its symbols: the describer reads the graph, not those)."""
    from qatfold import _fx

    read = run_cli("inspect", "--text", str(path)).stdout.splitlines(keepends=True)
    graph = "".join(line for line in read if not line.startswith(("verifier ", "symbol ")))
    assert _fx.describe(program).text() == graph


def assert_values_propagate(program) -> None:
    """Every node's meta["val"] (the replay makes those of new nodes from the
    core's dtypes and shapes) is what running the graph on fake inputs gives."""
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    mode = next(n.meta["val"].fake_mode for n in placeholders if isinstance(n.meta.get("val"), FakeTensor))
    recorded = {n: n.meta.get("val") for n in program.graph.nodes if n.op != "output"}
    FakeTensorProp(program.graph_module, mode).propagate_dont_convert_inputs(*[n.meta["val"] for n in placeholders])
    try:
        for node, val in recorded.items():
            leaves = torch.utils._pytree.tree_leaves
            for mine, theirs in zip(leaves(val), leaves(node.meta.get("val"))):
                if isinstance(theirs, torch.Tensor):
                    assert isinstance(mine, FakeTensor) and mine.fake_mode is mode, node.name
                    assert (mine.dtype, mine.shape, mine.stride(), mine.device) == \
                        (theirs.dtype, theirs.shape, theirs.stride(), theirs.device), node.name
    finally:
        for node, val in recorded.items():
            node.meta["val"] = val


def assert_equivalent(in_memory, archived, seeds: int = 2) -> None:
    assert ops(in_memory) == ops(archived)
    ours, theirs = tensors(in_memory), tensors(archived)
    assert ours.keys() == theirs.keys()
    for fqn, tensor in theirs.items():
        assert ours[fqn].dtype == tensor.dtype and torch.equal(ours[fqn], tensor), fqn
    for seed in range(seeds):
        x = random_inputs(archived, seed)
        a, b = in_memory.module()(*x), archived.module()(*x)
        left_leaves, right_leaves = torch.utils._pytree.tree_leaves(a), torch.utils._pytree.tree_leaves(b)
        assert len(left_leaves) == len(right_leaves) > 0
        for left, right in zip(left_leaves, right_leaves):
            assert torch.equal(left, right)


def snapshot(program):
    """What the in-memory fold must leave as it was."""
    return ([(n.name, str(n.target), n.args) for n in program.graph.nodes],
            {k: (v, v.detach().clone()) for k, v in tensors(program).items()})


def assert_untouched(program, before) -> None:
    nodes, values = before
    assert [(n.name, str(n.target), n.args) for n in program.graph.nodes] == nodes
    now = tensors(program)
    assert now.keys() == values.keys()
    for fqn, (tensor, copy) in values.items():
        assert now[fqn] is tensor and torch.equal(tensor, copy), fqn


def folded_both_ways(path: Path, out: Path, *extra: str) -> torch.export.ExportedProgram:
    """The CLI's fold of the archive at `path`, written to `out` and loaded,
    after checking that qatfold.fold in memory gives the same program."""
    run_cli("fold", str(path), "-o", str(out), *extra)
    archived = torch.export.load(out)
    program = torch.export.load(path)
    assert_described_as_read(program, path)
    before = snapshot(program)
    in_memory = qatfold.fold(program, **_options(extra)).program
    assert_untouched(program, before)
    assert_values_propagate(in_memory)
    assert_equivalent(in_memory, archived)
    saved = out.with_name(out.stem + "-in-memory.pt2")
    torch.export.save(in_memory, saved)
    assert_equivalent(torch.export.load(saved), archived, seeds=1)
    return archived
