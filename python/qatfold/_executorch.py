"""ExecuTorch's Cadence compile, folding with qatfold: the compiler module
with the Python 3.11 shim it needs, and the block within which its compile
functions find qatfold's FuseQATConvBN."""

from __future__ import annotations

import contextlib
from typing import Any

from . import _arguments
from ._report import FoldReport
from ._signatures import with_fold_options

# ExecuTorch's Cadence compile functions that fold, through
# apply_pre_edge_transform_passes, with the FuseQATConvBN they find in
# executorch.backends.cadence.aot.compiler when they run. export_to_cadence
# and export_to_edge take a program that is already fused: they never fold.
CADENCE_FOLDING_FUNCTIONS = ("apply_pre_edge_transform_passes", "quantize_pt2", "quantize_and_export_to_edge",
                             "quantize_and_export_to_cadence")


def cadence_compiler():
    """ExecuTorch's ``executorch.backends.cadence.aot.compiler``, imported on
    the Python the project pins: ExecuTorch 1.4.0's Cadence modules import
    ``typing.override``, new in Python 3.12, so on 3.11 this first sets
    ``typing.override`` to ``typing_extensions.override`` (the same
    decorator; only where ``typing`` lacks it)."""
    import typing

    if not hasattr(typing, "override"):
        import typing_extensions

        typing.override = typing_extensions.override  # type: ignore[attr-defined]
    from executorch.backends.cadence.aot import compiler

    return compiler


@contextlib.contextmanager
def in_cadence_compile(*, verify: Any = None, calibrate: Any = None, labels: Any = None, top1: bool = False,
                       **options: Any):
    """Within the block, ExecuTorch's Cadence compile folds with qatfold:
    ``apply_pre_edge_transform_passes``, ``quantize_pt2``,
    ``quantize_and_export_to_edge`` and ``quantize_and_export_to_cadence``
    (``CADENCE_FOLDING_FUNCTIONS``) look up ``FuseQATConvBN`` in
    ``executorch.backends.cadence.aot.compiler`` when they run, and find
    qatfold's there, with the keywords given here (every option of ``fold``,
    and ``verify``/``calibrate``/``labels``/``top1``, checked against each program it folds),
    until the block ends. ``export_to_cadence`` and ``export_to_edge`` never
    fold. Yields a list that receives the report of each fold::

        with qatfold.in_cadence_compile() as reports:
            fused = compiler.apply_pre_edge_transform_passes(converted, quantizer)

    On Python 3.11 it installs the ``typing.override`` shim that ExecuTorch
    1.4.0's Cadence modules need (``cadence_compiler``)."""
    from ._api import FuseQATConvBN  # the entry points import this module's names for qatfold's namespace

    _arguments.option_values(options, "in_cadence_compile")
    compiler = cadence_compiler()
    reports: list[FoldReport] = []
    original = compiler.FuseQATConvBN

    class _Reporting(FuseQATConvBN):
        def __init__(self, exported_program) -> None:
            super().__init__(exported_program, verify=verify, calibrate=calibrate, labels=labels, top1=top1,
                             **options)

        def call(self, graph_module):
            result = super().call(graph_module)
            reports.append(self.report)
            return result

    compiler.FuseQATConvBN = _Reporting
    try:
        yield reports
    finally:
        compiler.FuseQATConvBN = original


with_fold_options(in_cadence_compile)
