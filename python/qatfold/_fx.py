"""The FX front door: fold an ExportedProgram where it lives.

``describe`` hands the C++ core what its passes read, and nothing else: the
graph's nodes (names, targets, arguments, tensor dtypes, shapes and strides)
and signature as the schema's model JSON, without metadata, and every
parameter, buffer and constant as its storage, read in place through
DLPack. ``replay`` then applies the edits the core made (graph/edit_log.h) to
the program: the FX graph, the signature, the state_dict and the constants.
No ``torch.export.save``/``load``, no pickling.

torch has no public setters for an ExportedProgram's signature or tensors
(its property setters raise). As ExecuTorch's own passes do
(``create_constant_placeholder``/``delete_constant_placeholder`` in
executorch/backends/transforms/utils.py), the replay edits the signature's
``input_specs``/``output_specs`` lists and the ``state_dict``/``constants``
dictionaries in place. The only private names used are here: torch's dtype
tables of its serializer, and the ExportedProgram attributes a copy sets
directly (``_graph_module``, ``_graph_signature``, ``_state_dict``,
``_constants``, ``_range_constraints``, ``_module_call_graph``). A program this module cannot describe (custom
objects, tokens, tensors that are not on the CPU) raises ``Unsupported``, and
the caller takes the archive path.
"""

from __future__ import annotations

import gc
import json
import math
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

SCHEMA_MAJOR = 8  # program/schema.h kSchemaMajorVersion


class Unsupported(Exception):
    """A program the front door cannot describe; fold it through an archive."""


# ---- describe: program -> (model JSON, payloads) ---------------------------------


def _sym(value) -> dict:
    if isinstance(value, int):
        return {"as_int": value}
    return {"as_expr": {"expr_str": str(value), "hint": None}}


_META_CACHE: dict[tuple, dict] = {}


def _tensor_meta(value) -> dict:
    """The schema's TensorMeta of a (fake) tensor. Most tensors of a model
    share a few metas, so each is built once and the dict reused."""
    if not isinstance(value, torch.Tensor):
        raise Unsupported(f"a tensor value without a tensor meta ({type(value).__name__})")
    key = (value.dtype, tuple(value.shape), value.stride(), value.storage_offset(), value.requires_grad)
    meta = _META_CACHE.get(key)
    if meta is None:
        if len(_META_CACHE) > 4096:
            _META_CACHE.clear()
        meta = _META_CACHE[key] = {
            "dtype": _TORCH_TO_SERIALIZE_DTYPE[value.dtype].value,
            "sizes": [_sym(s) for s in key[1]],
            "requires_grad": bool(key[4]),
            "strides": [_sym(s) for s in key[2]],
            "storage_offset": _sym(key[3]),
        }
    return meta


def _float(value: float):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


class _Describer:
    def __init__(self, program) -> None:
        self.program = program
        self.tensor_values: dict[str, dict] = {}

    def argument(self, value) -> dict:
        if isinstance(value, torch.fx.Node):
            if isinstance(value.meta.get("val"), torch.Tensor) or value.op == "placeholder":
                return {"as_tensor": {"name": value.name}}
            return {"as_sym_int": {"as_name": value.name}}
        if value is None:
            return {"as_none": True}
        if isinstance(value, bool):
            return {"as_bool": value}
        if isinstance(value, int):
            return {"as_int": value}
        if isinstance(value, float):
            return {"as_float": _float(value)}
        if isinstance(value, str):
            return {"as_string": value}
        if isinstance(value, torch.dtype):
            return {"as_scalar_type": _TORCH_TO_SERIALIZE_DTYPE[value].value}
        if isinstance(value, torch.layout):
            return {"as_layout": _TORCH_TO_SERIALIZE_LAYOUT[value].value}
        if isinstance(value, torch.memory_format):
            return {"as_memory_format": _TORCH_TO_SERIALIZE_MEMORY_FORMAT[value].value}
        if isinstance(value, torch.device):
            return {"as_device": {"type": value.type, "index": value.index}}
        if isinstance(value, (list, tuple)):
            items = list(value)
            if items and all(isinstance(v, torch.fx.Node) for v in items):
                return {"as_tensors": [{"name": v.name} for v in items]}
            if any(isinstance(v, torch.fx.Node) for v in items):
                if all(v is None or isinstance(v, torch.fx.Node) for v in items):
                    return {"as_optional_tensors": [{"as_none": True} if v is None else {"as_tensor": {"name": v.name}}
                                                    for v in items]}
                return {"as_sym_ints": [self.argument(v)["as_sym_int"] if isinstance(v, torch.fx.Node)
                                        else {"as_int": v} for v in items]}
            if all(isinstance(v, bool) for v in items) and items:
                return {"as_bools": items}
            if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
                return {"as_ints": items}
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                return {"as_floats": [_float(float(v)) for v in items]}
        raise Unsupported(f"an argument of type {type(value).__name__}")

    def inputs(self, node: torch.fx.Node) -> list[dict]:
        target = node.target
        if isinstance(target, torch._ops.OpOverload):
            named = []
            for index, schema_arg in enumerate(target._schema.arguments):
                if not schema_arg.kwarg_only and index < len(node.args):
                    value = node.args[index]
                elif schema_arg.name in node.kwargs:
                    value = node.kwargs[schema_arg.name]
                else:
                    continue
                named.append({"name": schema_arg.name, "arg": self.argument(value), "kind": 1})
            return named
        # Any other callable: its arguments in order, so that every value it
        # reads is a use the passes see.
        flat = list(node.args) + list(node.kwargs.values())
        return [{"name": f"arg{i}", "arg": self.argument(v), "kind": 1} for i, v in enumerate(flat)]

    def outputs(self, node: torch.fx.Node) -> list[dict]:
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor):
            self.tensor_values[node.name] = _tensor_meta(val)
            return [{"as_tensor": {"name": node.name}}]
        if isinstance(val, (tuple, list)):
            getitems = {u.args[1]: u for u in node.users if u.target is operator.getitem}
            outputs = []
            for index, item in enumerate(val):
                if not isinstance(item, torch.Tensor):
                    raise Unsupported(f"'{node.name}' returns a {type(item).__name__}")
                name = getitems[index].name if index in getitems else f"{node.name}_unused_{index}"
                self.tensor_values[name] = _tensor_meta(item)
                outputs.append({"as_tensor": {"name": name}})
            return outputs
        if val is None:
            return [{"as_none": True}]
        return [{"as_sym_int": {"as_name": node.name}}]

    def model(self) -> str:
        program = self.program
        graph = program.graph_module.graph
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        specs = program.graph_signature.input_specs
        if len(placeholders) != len(specs):
            raise Unsupported("the graph's placeholders and its signature disagree")
        inputs, input_specs = [], []
        for node, spec in zip(placeholders, specs):
            if spec.kind == InputKind.USER_INPUT:
                if not isinstance(node.meta.get("val"), torch.Tensor):
                    raise Unsupported(f"user input '{node.name}' is not a tensor")
                argument = {"as_tensor": {"name": node.name}}
                input_specs.append({"user_input": {"arg": argument}})
            elif spec.kind == InputKind.PARAMETER:
                input_specs.append({"parameter": {"arg": {"name": node.name}, "parameter_name": spec.target}})
            elif spec.kind == InputKind.BUFFER:
                input_specs.append({"buffer": {"arg": {"name": node.name}, "buffer_name": spec.target,
                                               "persistent": bool(spec.persistent)}})
            elif spec.kind == InputKind.CONSTANT_TENSOR:
                input_specs.append({"tensor_constant": {"arg": {"name": node.name},
                                                        "tensor_constant_name": spec.target}})
            else:
                raise Unsupported(f"an input of kind {spec.kind.name}")
            self.tensor_values[node.name] = _tensor_meta(node.meta.get("val"))
            inputs.append({"as_tensor": {"name": node.name}})

        nodes = []
        output_node = None
        for node in graph.nodes:
            if node.op == "output":
                output_node = node
            elif node.op == "call_function" and node.target is operator.getitem and \
                    isinstance(node.args[0].meta.get("val"), (tuple, list)):
                continue  # an output of its producer (see outputs())
            elif node.op == "call_function":
                target = node.target
                name = f"torch.ops.{target}" if isinstance(target, torch._ops.OpOverload) else \
                    f"{getattr(target, '__module__', '')}.{getattr(target, '__name__', str(target))}"
                nodes.append({"target": name, "inputs": self.inputs(node), "outputs": self.outputs(node),
                              "metadata": _module_stack(node), "name": node.name})
            elif node.op != "placeholder":
                raise Unsupported(f"a node of op '{node.op}'")

        outputs = [self.argument(v) for v in output_node.args[0]]
        output_specs = []
        for argument, spec in zip(outputs, program.graph_signature.output_specs):
            if spec.kind == OutputKind.USER_OUTPUT:
                output_specs.append({"user_output": {"arg": argument}})
            elif spec.kind == OutputKind.BUFFER_MUTATION and "as_tensor" in argument:
                output_specs.append({"buffer_mutation": {"arg": argument["as_tensor"], "buffer_name": spec.target}})
            else:
                raise Unsupported(f"an output of kind {spec.kind.name}")
        document = {
            "graph_module": {
                "graph": {"inputs": inputs, "outputs": outputs, "nodes": nodes, "tensor_values": self.tensor_values,
                          "sym_int_values": {}, "sym_bool_values": {}, "is_single_tensor_return": False,
                          "custom_obj_values": {}, "sym_float_values": {}},
                "signature": {"input_specs": input_specs, "output_specs": output_specs},
                "module_call_graph": [],
            },
            "schema_version": {"major": SCHEMA_MAJOR, "minor": 0},
            "opset_version": {"aten": 10},
        }
        return json.dumps(document, allow_nan=False, check_circular=False, separators=(",", ":"))


def _module_stack(node: torch.fx.Node) -> dict:
    """The node's nn_module_stack as the schema spells it ("key,path,type;..."):
    the report names each conv by its module path."""
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return {}
    entries = []
    for key, (path, kind) in stack.items():
        kind = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
        entries.append(f"{key},{path},{kind}")
    return {"nn_module_stack": ";".join(entries)}


def _storage_bytes(tensor: torch.Tensor) -> torch.Tensor:
    """The bytes of `tensor`'s storage as a flat uint8 tensor, no copy."""
    return torch.empty(0, dtype=torch.uint8).set_(tensor.untyped_storage())


def describe(program) -> tuple[str, list[tuple]]:
    """The model JSON and the payloads of ``program`` for ``_core.fold_graph``."""
    # Thousands of small dicts: with the collector on, its full passes over
    # torch's heap cost more than the description itself.
    collecting = gc.isenabled()
    gc.disable()
    try:
        model = _Describer(program).model()
    finally:
        if collecting:
            gc.enable()
    payloads = []
    for spec in program.graph_signature.input_specs:
        if spec.kind not in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            continue
        in_constants = spec.target in program.constants and spec.target not in program.state_dict
        tensor = program.constants[spec.target] if in_constants else program.state_dict[spec.target]
        if not isinstance(tensor, torch.Tensor):
            raise Unsupported(f"'{spec.target}' is not a tensor")
        tensor = tensor.detach()
        if tensor.device.type != "cpu" or tensor.is_quantized or tensor.layout != torch.strided:
            raise Unsupported(f"'{spec.target}' is not a dense CPU tensor")
        payloads.append((spec.target, in_constants, spec.kind == InputKind.PARAMETER,
                         _TORCH_TO_SERIALIZE_DTYPE[tensor.dtype].value, list(tensor.shape), list(tensor.stride()),
                         tensor.storage_offset(), _storage_bytes(tensor)))
    return model, payloads


# ---- replay: the core's edits -> the program ------------------------------------


def _resolve(target: str):
    """torch.ops.<namespace>.<op>.<overload> as the op."""
    parts = target.split(".")
    if parts[:2] != ["torch", "ops"] or len(parts) != 5:
        raise ValueError(f"the core inserted a node with target '{target}'")
    return getattr(getattr(getattr(torch.ops, parts[2]), parts[3]), parts[4])


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


_EDIT_KINDS = frozenset({"replace_all_uses", "set_input", "insert_node", "erase_node", "add_constant",
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

    def set_input(self, edit: dict) -> None:
        node, value = self.nodes[edit["node"]], self.nodes[edit["value"]]
        arguments = node.target._schema.arguments
        index = next(i for i, a in enumerate(arguments) if a.name == edit["operand"])
        if index < len(node.args):
            node.update_arg(index, value)
        elif index == len(node.args) and not arguments[index].kwarg_only and edit["operand"] not in node.kwargs:
            node.args = (*node.args, value)
        else:
            node.update_kwarg(edit["operand"], value)

    def insert_node(self, edit: dict) -> None:
        target = _resolve(edit["target"])
        given = {name: self.python_value(json.loads(argument)) for name, argument in edit["operands"]}
        # Positional up to the first argument left at its default, by keyword after.
        args, kwargs, positional = [], {}, True
        for schema_arg in target._schema.arguments:
            if schema_arg.name not in given:
                positional = False
            elif positional and not schema_arg.kwarg_only:
                args.append(given[schema_arg.name])
            else:
                kwargs[schema_arg.name] = given[schema_arg.name]
        anchor = self.nodes[edit["anchor"]] if edit["anchor"] else next(n for n in self.graph.nodes if n.op == "output")
        with self.graph.inserting_before(anchor):
            node = self.graph.call_function(target, tuple(args), kwargs)
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
        kind = {"parameter": InputKind.PARAMETER, "buffer": InputKind.BUFFER,
                "constant": InputKind.CONSTANT_TENSOR}[edit["input_kind"]]
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
        self.graph.lint()
        self.program.graph_module.recompile()


def replay(program, edits: list[dict]) -> None:
    """Applies the core's edits to ``program`` in place."""
    _Replayer(program).replay(edits)


def copy_program(program):
    """A new ExportedProgram with its own graph, signature and tensor
    dictionaries; the tensors themselves are shared (the fold replaces
    tensors, it never writes into them)."""
    import copy

    graph = torch.fx.Graph()
    graph._codegen = copy.deepcopy(program.graph_module.graph._codegen)
    copied: dict[torch.fx.Node, torch.fx.Node] = {}
    output = graph.graph_copy(program.graph_module.graph, copied)
    graph.output(output)
    module = torch.fx.GraphModule(program.graph_module, graph)
    module.meta.update(program.graph_module.meta)
    # The copy may rename a node ("input" shadows a builtin): the signature
    # follows, as torch's own graph transforms do it.
    renamed = {old.name: new.name for old, new in copied.items() if old.name != new.name}
    signature = copy.deepcopy(program.graph_signature)
    for spec in [*signature.input_specs, *signature.output_specs]:
        if isinstance(spec.arg, TensorArgument) and spec.arg.name in renamed:
            spec.arg = TensorArgument(name=renamed[spec.arg.name])
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


def fold_in_place(program, options: dict[str, str], explain: bool) -> tuple[str, str]:
    """Folds ``program`` in place; returns (report JSON, report text)."""
    from . import _core

    model, payloads = describe(program)
    edits, report_json, text = _core.fold_graph(model, payloads, options, explain)
    if edits:
        replay(program, edits)
    return report_json, text
