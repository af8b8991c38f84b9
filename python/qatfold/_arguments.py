"""The one error contract of the Python front ends: every argument of
``fold``, ``FuseQATConvBN``, ``in_cadence_compile`` and ``python -m qatfold``
is checked here, and a wrong one raises ``QatfoldError`` naming the argument
and what was expected, before anything runs."""

from __future__ import annotations

from typing import Any

from . import _core
from ._core import QatfoldError

# The fold pipeline's options, from the C++ table (passes/fold_options.h)
# that also makes the command line's flags: python_name -> row with
# "cli_flag", "help", "default" (text), "kind" ("float" with "min"/"max",
# "choice" with "choices", or "flag").
FOLD_OPTIONS: dict[str, dict[str, Any]] = {row["python_name"]: row for row in _core.fold_options()}


def _type_name(value: Any) -> str:
    """"an int", "a str": the type of ``value`` for a message."""
    name = type(value).__name__
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def check_program(program: Any, caller: str) -> None:
    """``program`` must be a torch.export.ExportedProgram."""
    import torch

    if isinstance(program, torch.export.ExportedProgram):
        return
    expected = f"{caller}: program must be a torch.export.ExportedProgram, not {_type_name(program)}"
    if isinstance(program, torch.fx.GraphModule):
        raise QatfoldError(f"{expected}: pass the ExportedProgram itself, not its .module() or graph_module")
    if isinstance(program, torch.nn.Module):
        raise QatfoldError(f"{expected}: export the model first (torch.export.export(model, example_inputs), "
                           "then prepare_qat_pt2e / convert_pt2e)")
    if isinstance(program, (str, bytes)) or hasattr(program, "__fspath__"):
        raise QatfoldError(f"{expected}: load the file first (torch.export.load(path)), or fold it from the shell "
                           "with `qatfold fold IN.pt2 -o OUT.pt2`")
    raise QatfoldError(expected)


def option_values(options: dict[str, Any], caller: str) -> dict[str, str]:
    """The keyword options as the core reads them (text). TypeError for an
    unknown keyword, as Python gives for any function; QatfoldError for a
    value of the wrong type or outside the option's range."""
    unknown = sorted(set(options) - set(FOLD_OPTIONS))
    if unknown:
        raise TypeError(f"{caller}() got unexpected keyword argument(s) {', '.join(unknown)}; "
                        f"the fold options are {', '.join(FOLD_OPTIONS)}")
    values = {}
    for name, value in options.items():
        row = FOLD_OPTIONS[name]
        if row["kind"] == "flag":
            if not isinstance(value, bool):
                raise QatfoldError(f"{caller}: {name} must be True or False, not {_type_name(value)}")
            values[name] = "true" if value else "false"
            continue
        if row["kind"] == "choice":
            if not isinstance(value, str) or value not in row["choices"]:
                shown = repr(value) if isinstance(value, str) else _type_name(value)
                raise QatfoldError(f"{caller}: {name} must be one of "
                                   f"{', '.join(repr(c) for c in row['choices'])}, not {shown}")
            values[name] = value
            continue
        expected = f"{caller}: {name} must be a number in [{row['min']:g}, {row['max']:g}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise QatfoldError(f"{expected}, not {_type_name(value)}")
        if not row["min"] <= value <= row["max"]:  # also NaN
            raise QatfoldError(f"{expected}, not {value!r}")
        values[name] = repr(float(value))
    return values


def check_flag(value: Any, name: str, caller: str) -> None:
    """A keyword that takes True or False."""
    if not isinstance(value, bool):
        raise QatfoldError(f"{caller}: {name} must be True or False, not {_type_name(value)}")


_BATCHES = "a tuple of tensors (one batch) or a list of such tuples"
_INPUTS_EXPECTED = _BATCHES + ", or True for the program's example inputs"


def batches(program, inputs: Any, argument: str) -> tuple[str, list[tuple]]:
    """(source, batches) of the inputs given as ``argument`` ("verify",
    "calibrate", "--inputs"): each batch a tuple of tensors that fits the
    program's user inputs (count, dtype, rank and every static size).
    ``inputs`` True (or None) means the program's example inputs."""
    import torch
    from torch.utils._pytree import tree_flatten

    if inputs is None or inputs is True:
        if program.example_inputs is None:
            raise QatfoldError(f"{argument}: the program carries no example inputs; give {_BATCHES}")
        args, kwargs = program.example_inputs
        return "example_inputs", [tuple(tree_flatten((args, kwargs))[0])]
    if isinstance(inputs, torch.Tensor):
        given = [(inputs,)]
    elif isinstance(inputs, tuple):
        given = [inputs]
    elif isinstance(inputs, list):
        given = inputs
    else:
        shown = repr(inputs) if isinstance(inputs, (str, bool)) else _type_name(inputs)
        raise QatfoldError(f"{argument} must be {_INPUTS_EXPECTED}, not {shown}")
    if not given:
        raise QatfoldError(f"{argument}: no inputs given (an empty list); give {_BATCHES}")
    found = []
    for index, batch in enumerate(given):
        if isinstance(batch, torch.Tensor):
            batch = (batch,)
        if not isinstance(batch, (tuple, list)):
            raise QatfoldError(f"{argument}: batch {index} must be a tuple of tensors, not {_type_name(batch)}")
        flat = tuple(tree_flatten(tuple(batch))[0])
        _check_fits(program, flat, f"{argument}: batch {index}")
        found.append(flat)
    return "given", found


def _user_input_metas(program) -> list[tuple[str, Any]]:
    """(name, FakeTensor or None) of each user input, in order."""
    user_inputs = set(program.graph_signature.user_inputs)
    return [(node.name, node.meta.get("val")) for node in program.graph.nodes
            if node.op == "placeholder" and node.name in user_inputs]


def _check_fits(program, batch: tuple, where: str) -> None:
    import torch

    expected = _user_input_metas(program)
    if len(batch) != len(expected):
        raise QatfoldError(f"{where} has {len(batch)} tensor(s); the program takes {len(expected)} input(s) "
                           f"({', '.join(name for name, _ in expected)})")
    for position, (value, (name, meta)) in enumerate(zip(batch, expected)):
        if not isinstance(meta, torch.Tensor):
            continue  # a non-tensor input: the program checks it when it runs
        if not isinstance(value, torch.Tensor):
            raise QatfoldError(f"{where}, input {position} ('{name}') must be a tensor, not {_type_name(value)}")
        wanted = [_size_range(program, size) for size in meta.shape]
        shown = "[" + ", ".join(_shown(low, high) for low, high in wanted) + "]"
        if value.dtype != meta.dtype:
            raise QatfoldError(f"{where}, input {position} ('{name}') has dtype {value.dtype}; "
                               f"the program takes {meta.dtype} {shown}")
        if value.dim() != len(wanted) or any(not low <= size <= high for (low, high), size in zip(wanted, value.shape)):
            raise QatfoldError(f"{where}, input {position} ('{name}') has shape {list(value.shape)}; "
                               f"the program takes {shown}")


def _size_range(program, size) -> tuple[int, float]:
    """(lowest, highest) a dimension of the program's input may be: one
    number for a static size, the range torch.export recorded for a dynamic
    one (the highest may be infinite)."""
    if isinstance(size, int):
        return size, size
    expression = size.node.expr
    bounds = program.range_constraints.get(expression)
    if bounds is None:
        return 0, float("inf")
    from torch.utils._sympy.numbers import int_oo

    infinite = bounds.upper == int_oo or bool(bounds.upper.is_infinite)
    return int(bounds.lower), float("inf") if infinite else int(bounds.upper)


def _shown(low: int, high: float) -> str:
    if low == high:
        return str(low)
    return f"{low}..{'' if high == float('inf') else int(high)}"


def run_batch(run, where: str):
    """``run()`` (a program on one batch); what torch raises for inputs the
    program's guards refuse (a dynamic size outside its range) becomes a
    QatfoldError naming ``where``."""
    try:
        return run()
    except QatfoldError:
        raise
    except (AssertionError, RuntimeError, TypeError, ValueError, IndexError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QatfoldError(f"{where} does not fit the program: {first}") from e


_LABELS_EXPECTED = ("a 1-D integer tensor of class indices (one per sample, over every batch in order) "
                    "or a list of such tensors, one per batch")


def labels(value: Any, batch_count: int, argument: str = "labels") -> list | None:
    """The labels given for verifying (``labels=``, ``--labels``), checked
    for what can be known before anything runs: a list of 1-D int64 tensors,
    one per batch, or one such tensor for every batch (a one-element list)
    that the verification splits by the rows of each batch's output. None
    when ``value`` is None."""
    import torch

    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        given, per_batch = [value], False
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        given, per_batch = list(value), True
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value):
        given, per_batch = [torch.tensor(list(value))], False
    else:
        shown = "an empty list" if isinstance(value, (list, tuple)) and not value else _type_name(value)
        raise QatfoldError(f"{argument} must be {_LABELS_EXPECTED}, not {shown}")
    if per_batch and len(given) != batch_count:
        raise QatfoldError(f"{argument}: {len(given)} tensors of labels for {batch_count} batch(es); "
                           "give one per batch, or one tensor for all of them")
    checked = []
    for index, tensor in enumerate(given):
        where = f"{argument}[{index}]" if per_batch else argument
        if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
            raise QatfoldError(f"{where} must hold integer class indices, not {tensor.dtype}")
        if tensor.dim() != 1:
            raise QatfoldError(f"{where} must be 1-D (one class index per sample), not of shape {list(tensor.shape)}")
        checked.append(tensor.to(torch.int64))
    return checked
