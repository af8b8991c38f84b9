"""The FX front door: fold an ExportedProgram where it lives.

``describe`` hands the C++ core what its passes read, and nothing else: the
C++ describer (python/fx_describe.h) reads the graph's nodes (names,
targets, arguments, tensor dtypes, shapes and strides, module paths) and
signature where they live, and every parameter, buffer and constant crosses
as the bytes of its storage, read in place (the storage is kept alive for
the fold, never copied). ``replay`` then applies the edits the core made
(graph/edit_log.h) to the program: the FX graph, the signature, the
state_dict and the constants.
No ``torch.export.save``/``load``, no pickling.

torch has no public setters for an ExportedProgram's signature or tensors
(its property setters raise). As ExecuTorch's own passes do
(``create_constant_placeholder``/``delete_constant_placeholder`` in
executorch/backends/transforms/utils.py), the replay edits the signature's
``input_specs``/``output_specs`` lists and the ``state_dict``/``constants``
dictionaries in place. The only private names used are here: torch's dtype
tables of its serializer, ``OpOverload._schema``, the ``FakeTensor``
constructor, the GraphModule's ``_graph`` (a copy takes its graph without
compiling it), the graph namespace's ``_obj_to_name`` and ``Node._erased``
(erased nodes are let go), and the ExportedProgram attributes a copy sets directly
(``_graph_module``, ``_graph_signature``, ``_state_dict``, ``_constants``,
``_range_constraints``, ``_module_call_graph``). A program this module
cannot describe (custom objects, tokens, tensors that are not on the CPU)
raises ``Unsupported``, and the caller takes the archive path.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import operator
from typing import Any

import torch
from torch._export.serde.serialize import (
    _SERIALIZE_TO_TORCH_DTYPE,
    _TORCH_TO_SERIALIZE_DTYPE,
    _TORCH_TO_SERIALIZE_LAYOUT,
    _TORCH_TO_SERIALIZE_MEMORY_FORMAT,
)
from torch._subclasses.fake_tensor import FakeTensor
from torch.export.graph_signature import InputKind, InputSpec, OutputKind, TensorArgument


class Unsupported(Exception):
    """A program the front door cannot describe; fold it through an archive."""


# ---- describe: program -> the core's program ---------------------------------


@functools.cache
def _context() -> dict[str, Any]:
    """The torch objects the C++ describer (python/fx_describe.h) compares
    with, and the codes the schema gives them."""
    return {
        "Node": torch.fx.Node,
        "Tensor": torch.Tensor,
        "OpOverload": torch._ops.OpOverload,
        "device": torch.device,
        "getitem": operator.getitem,
        "dtypes": {k: v.value for k, v in _TORCH_TO_SERIALIZE_DTYPE.items()},
        "layouts": {k: v.value for k, v in _TORCH_TO_SERIALIZE_LAYOUT.items()},
        "memory_formats": {k: v.value for k, v in _TORCH_TO_SERIALIZE_MEMORY_FORMAT.items()},
        "input_kinds": {InputKind.USER_INPUT: "user_input", InputKind.PARAMETER: "parameter",
                        InputKind.BUFFER: "buffer", InputKind.CONSTANT_TENSOR: "tensor_constant"},
        "output_kinds": {OutputKind.USER_OUTPUT: "user_output", OutputKind.BUFFER_MUTATION: "buffer_mutation"},
        "strided": torch.strided,
        "Unsupported": Unsupported,
    }


@functools.cache
def _input_kinds_by_name() -> dict[str, InputKind]:
    """The schema's kind names (program/schema.h kInputKindNames) as torch's kinds."""
    return {name: kind for kind, name in _context()["input_kinds"].items()}


def describe(program):
    """``program`` as the core's graph (``_core.MemoryProgram``), its tensors
    read in place; raises Unsupported for what the core cannot describe."""
    from . import _core

    return _core.MemoryProgram(program, _context())


# ---- replay: the core's edits -> the program ------------------------------------


def _resolve(target: str):
    """torch.ops.<namespace>.<op>.<overload> as the op."""
    parts = target.split(".")
    if parts[:2] != ["torch", "ops"] or len(parts) != 5:
        raise ValueError(f"the core inserted a node with target '{target}'")
    return getattr(getattr(getattr(torch.ops, parts[2]), parts[3]), parts[4])


@functools.cache
def _schema_arguments(op) -> tuple[tuple[str, bool], ...]:
    """(name, kwarg_only) of each argument of ``op``'s schema (read once:
    torch builds the list anew on every access)."""
    return tuple((a.name, a.kwarg_only) for a in op._schema.arguments)


def _tensor_from(edit: dict) -> torch.Tensor:
    meta = edit["meta"]
    dtype = _SERIALIZE_TO_TORCH_DTYPE[meta["dtype"]]
    data = bytearray(edit["data"])
    flat = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
    return torch.as_strided(flat, meta["sizes"], meta["strides"], meta["offset"])


def _fake_mode(graph: torch.fx.Graph):
    """The fake mode of the graph's values and their device, or (None, None)."""
    for node in graph.nodes:
        val = node.meta.get("val")
        val = val[0] if isinstance(val, (tuple, list)) and val else val
        if isinstance(val, FakeTensor):
            return val.fake_mode, val.device
    return None, None


# FX's lint of every replayed graph. The core lints its own graph before
# the edits leave it; FX's lint re-checks the replay itself, a tenth of its
# time, so the test suite turns it on (tests/python/conftest.py) and a
# user's fold does without it.
LINT_AFTER_REPLAY = False

_EDIT_KINDS = frozenset({"replace_all_uses", "set_input", "set_argument", "insert_node", "erase_node", "add_constant",
                         "replace_tensor_data", "remove_constant"})


class _Replayer:
    def __init__(self, program) -> None:
        self.program = program
        self.graph = program.graph_module.graph
        self.nodes = {n.name: n for n in self.graph.nodes}
        self.fake_mode, self.device = _fake_mode(self.graph)
        self.removed: list[torch.fx.Node] = []
        # In signature order, kept up to date as constants are added, with the
        # position of the last input of each kind.
        self.placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        self.last_of_kind = {spec.kind: i for i, spec in enumerate(program.graph_signature.input_specs)}

    def python_value(self, argument: dict):
        (kind, value), = argument.items()
        if kind == "as_tensor":
            return self.nodes[value["name"]]
        if kind == "as_tensors":
            return [self.nodes[v["name"]] for v in value]
        if kind == "as_optional_tensors":
            return [None if "as_none" in v else self.nodes[v["as_tensor"]["name"]] for v in value]
        if kind == "as_none":
            return None
        if kind == "as_float":
            return float(value) if not isinstance(value, str) else float(value.replace("Infinity", "inf"))
        if kind == "as_scalar_type":
            return _SERIALIZE_TO_TORCH_DTYPE[value]
        if kind in ("as_int", "as_bool", "as_string", "as_ints", "as_bools"):
            return value
        if kind == "as_floats":
            return [float(v) for v in value]
        raise ValueError(f"the core inserted an argument of kind {kind}")

    def fake(self, dtype: torch.dtype, sizes, strides):
        """A fake tensor of that dtype, shape and strides in the graph's fake
        mode, wrapped around a meta tensor the way the mode wraps the results
        of its ops (a tenth of the cost of entering the mode to make one)."""
        if self.fake_mode is None:
            return None
        meta = torch.empty_strided(sizes, strides, dtype=dtype, device="meta")
        return FakeTensor(self.fake_mode, meta, self.device)

    def fake_like(self, tensor: torch.Tensor):
        return self.fake(tensor.dtype, tensor.shape, tensor.stride())

    def replace_all_uses(self, edit: dict) -> None:
        old, new = self.nodes[edit["value"]], self.nodes[edit["other"]]
        old.replace_all_uses_with(new)
        # The signature names the graph's outputs too.
        for spec in self.program.graph_signature.output_specs:
            if isinstance(spec.arg, TensorArgument) and spec.arg.name == old.name:
                spec.arg = TensorArgument(name=new.name)

    def set_operand(self, node: torch.fx.Node, operand: str, value) -> None:
        arguments = _schema_arguments(node.target)
        index = next(i for i, (name, _) in enumerate(arguments) if name == operand)
        if index < len(node.args):
            node.update_arg(index, value)
        elif index == len(node.args) and not arguments[index][1] and operand not in node.kwargs:
            node.args = (*node.args, value)
        else:
            node.update_kwarg(operand, value)

    def set_input(self, edit: dict) -> None:
        self.set_operand(self.nodes[edit["node"]], edit["operand"], self.nodes[edit["value"]])

    def set_argument(self, edit: dict) -> None:
        self.set_operand(self.nodes[edit["node"]], edit["operand"], self.python_value(edit["argument"]))

    def insert_node(self, edit: dict) -> None:
        target = _resolve(edit["target"])
        given = {name: self.python_value(argument) for name, argument in edit["operands"]}
        # Positional up to the first argument left at its default, by keyword after.
        args, kwargs, positional = [], {}, True
        for name, kwarg_only in _schema_arguments(target):
            if name not in given:
                positional = False
            elif positional and not kwarg_only:
                args.append(given[name])
            else:
                kwargs[name] = given[name]
        anchor = self.nodes[edit["anchor"]] if edit["anchor"] else next(n for n in self.graph.nodes if n.op == "output")
        with self.graph.inserting_before(anchor):
            # The core's name, as the archive path writes it (FX keeps it unless taken).
            node = self.graph.create_node("call_function", target, tuple(args), kwargs, name=edit["node"])
        source = self.nodes.get(edit["metadata_source"])
        if source is not None:
            node.meta.update({k: v for k, v in source.meta.items() if k not in ("val", "tensor_meta")})
        # The core computed the output's dtype and shape (as the archive path
        # writes them): the value is made from those, without running the op.
        meta = edit["meta"]
        node.meta["val"] = self.fake(_SERIALIZE_TO_TORCH_DTYPE[meta["dtype"]], meta["sizes"], meta["strides"])
        self.nodes[edit["node"]] = node
        self.nodes[edit["value"]] = node

    def erase_node(self, edit: dict) -> None:
        node = self.nodes.pop(edit["node"])
        for user in list(node.users):
            if user.target is operator.getitem and not user.users:
                self.graph.erase_node(user)
        self.graph.erase_node(node)

    def add_constant(self, edit: dict) -> None:
        kind = _input_kinds_by_name()[edit["input_kind"]]
        tensor, fqn = _tensor_from(edit), edit["fqn"]
        if kind == InputKind.PARAMETER:
            self.program.state_dict[fqn] = torch.nn.Parameter(tensor, requires_grad=False)
        elif kind == InputKind.BUFFER:
            self.program.state_dict[fqn] = tensor
        else:
            self.program.constants[fqn] = tensor
        # Where the core put it: after the last placeholder of its kind, else
        # after the last parameter, buffer or constant, else first.
        specs, placeholders, last = self.program.graph_signature.input_specs, self.placeholders, self.last_of_kind
        constant = [i for k, i in last.items() if k != InputKind.USER_INPUT]
        index = last[kind] + 1 if kind in last else max(constant) + 1 if constant else 0
        for k, i in last.items():
            if i >= index:
                last[k] = i + 1
        last[kind] = index
        point = self.graph.inserting_before(placeholders[index]) if index < len(placeholders) else \
            self.graph.inserting_after(placeholders[-1])
        with point:
            node = self.graph.placeholder(edit["value"])
        node.meta["val"] = self.fake_like(tensor)
        specs.insert(index, InputSpec(kind, TensorArgument(name=node.name), fqn,
                                      True if kind == InputKind.BUFFER else None))
        placeholders.insert(index, node)
        self.nodes[edit["value"]] = node

    def replace_tensor_data(self, edit: dict) -> None:
        tensor = _tensor_from(edit)
        fqn = edit["fqn"]
        if fqn in self.program.state_dict:
            old = self.program.state_dict[fqn]
            self.program.state_dict[fqn] = torch.nn.Parameter(tensor, requires_grad=old.requires_grad and
                                                              tensor.is_floating_point()) \
                if isinstance(old, torch.nn.Parameter) else tensor
        else:
            self.program.constants[fqn] = tensor
        node = self.nodes[edit["value"]]
        old = node.meta.get("val")
        same = isinstance(old, torch.Tensor) and old.dtype == tensor.dtype and old.shape == tensor.shape and \
            old.stride() == tensor.stride()
        if not same:
            node.meta["val"] = self.fake_like(tensor)

    def remove_constant(self, edit: dict) -> None:
        # Collected, and removed together at the end (one pass over the signature).
        self.removed.append(self.nodes.pop(edit["value"]))

    def remove_collected_constants(self) -> None:
        if not self.removed:
            return
        names = {node.name for node in self.removed}
        signature = self.program.graph_signature
        dropped = [spec for spec in signature.input_specs if spec.arg.name in names]
        signature.input_specs[:] = [spec for spec in signature.input_specs if spec.arg.name not in names]
        for node in self.removed:
            self.graph.erase_node(node)
        # A tensor goes unless another input still binds the same FQN.
        still_bound = {spec.target for spec in signature.input_specs}
        for spec in dropped:
            if spec.target not in still_bound:
                self.program.state_dict.pop(spec.target, None)
                self.program.constants.pop(spec.target, None)

    def replay(self, edits: list[dict]) -> None:
        for edit in edits:
            # Each kind of edit (graph/edit_log.h) has the method of its name.
            if edit["kind"] not in _EDIT_KINDS:
                raise ValueError(f"unknown edit '{edit['kind']}'")
            getattr(self, edit["kind"])(edit)
        self.remove_collected_constants()
        self.release_erased_nodes()
        if LINT_AFTER_REPLAY:
            self.graph.lint()
        self.program.graph_module.recompile()

    def release_erased_nodes(self) -> None:
        """FX's graph namespace maps every node it ever made to its name and
        keeps erased ones there, alive with their meta for as long as the
        graph lives (over half the nodes of a folded copy: it copies all,
        then the fold erases each chain). Their names stay taken; the nodes
        go."""
        names = self.graph._graph_namespace._obj_to_name
        for node in [n for n in names if isinstance(n, torch.fx.Node) and n._erased]:
            del names[node]


def replay(program, edits: list[dict]) -> None:
    """Applies the core's edits to ``program`` in place."""
    _Replayer(program).replay(edits)


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic collector off for the block: copying a graph, the
    edits and the replay make thousands of small objects, and with the
    collector on its passes over torch's heap cost more than the work (a
    400-chain graph copy: 190-750 ms with it, 190 ms without)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


@collector_paused()
def copy_program(program, compile: bool = True):
    """A new ExportedProgram with its own graph, signature and tensor
    dictionaries; the tensors themselves are shared (the fold replaces
    tensors, it never writes into them). With ``compile=False`` its module
    has no code yet: the caller recompiles it once it has edited the graph
    (torch keeps the source of every compiled module for good)."""
    import copy

    graph = torch.fx.Graph()
    graph._codegen = copy.deepcopy(program.graph_module.graph._codegen)
    copied: dict[torch.fx.Node, torch.fx.Node] = {}
    output = graph.graph_copy(program.graph_module.graph, copied)
    graph.output(output)
    if compile:
        module = torch.fx.GraphModule(program.graph_module, graph)
    else:
        # The GraphModule's graph setter compiles: it gets a one-node graph,
        # and the copy is put in place as that setter does it.
        empty = torch.fx.Graph()
        empty.output(None)
        module = torch.fx.GraphModule(program.graph_module, empty)
        module._graph = graph
        graph.owning_module = module
    module.meta.update(program.graph_module.meta)
    # The copy may rename a node ("input" shadows a builtin): the signature
    # follows, as torch's own graph transforms do it.
    renamed = {old.name: new.name for old, new in copied.items() if old.name != new.name}
    # Specs and their arguments are flat records (torch renames an argument
    # in place, so each gets its own): two shallow copies each, where a deep
    # copy of the signature was a tenth of the copy's time.
    def spec_copy(spec):
        spec = copy.copy(spec)
        spec.arg = copy.copy(spec.arg)
        if isinstance(spec.arg, TensorArgument) and spec.arg.name in renamed:
            spec.arg.name = renamed[spec.arg.name]
        return spec

    signature = type(program.graph_signature)(
        input_specs=[spec_copy(spec) for spec in program.graph_signature.input_specs],
        output_specs=[spec_copy(spec) for spec in program.graph_signature.output_specs])
    # The input was a valid program and this is the same program: set the
    # parts directly instead of through the constructor, which would
    # recompile and verify it again.
    copied_program = copy.copy(program)
    copied_program._graph_module = module
    copied_program._graph_signature = signature
    copied_program._state_dict = dict(program.state_dict)
    copied_program._constants = dict(program.constants)
    copied_program._range_constraints = copy.copy(program.range_constraints)
    copied_program._module_call_graph = copy.deepcopy(program.module_call_graph)
    return copied_program


def fold_in_place(program, options: dict[str, str], explain: bool, compiled: bool = True,
                  observed: dict[str, tuple[float, float]] | None = None) -> tuple[str, str]:
    """Folds ``program`` in place; returns (report JSON, report text). A
    program whose module has no code yet (``compiled=False``) gets it even
    when nothing folds. ``observed``: batch_norm output ranges from
    calibration (_verify.observe_batch_norms)."""
    with collector_paused():
        edits, report_json, text = describe(program).fold(options, explain, observed or {})
        if edits:
            replay(program, edits)
        elif not compiled:
            program.graph_module.recompile()
    return report_json, text
