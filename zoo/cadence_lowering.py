"""ExecuTorch's Cadence flow as the tests drive it, with two upstream quirks handled.

- ExecuTorch 1.4.0's Cadence AOT modules import typing.override (Python
  3.12); torch 2.13.0's wheel here is for Python 3.11, so alias it.
- Its edge verifier extends the preserve-ops list it is given with the
  config's own list, which is the same module-level list: every lowering
  doubles compiler.TO_EDGE_PRESERVE_OPS, and a process that lowers a dozen
  programs runs out of memory. Restore the list after each lowering.
"""

from __future__ import annotations

import typing

import typing_extensions

if not hasattr(typing, "override"):
    typing.override = typing_extensions.override


def lower_to_cadence(program, fuse_pass=None, quantizer=None):
    """QuantFusionPass (after `fuse_pass(program)`, if given) with the
    patterns of `quantizer` (the QAT default quantizer's if None), the
    torch-ops passes, and lowering to the Cadence edge program; returns its
    ExportedProgram."""
    import executorch.backends.cadence.aot.ref_implementations  # noqa: F401 (Python kernels)
    from executorch.backends.cadence.aot import compiler
    from executorch.backends.cadence.aot.passes import apply_torch_ops_passes
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from executorch.exir.pass_manager import PassManager

    patterns = [q.pattern for q in (quantizer or CadenceDefaultQuantizer(is_qat=True)).quantizers]
    passes = ([fuse_pass(program)] if fuse_pass else []) + [compiler.QuantFusionPass(patterns)]
    preserved = list(compiler.TO_EDGE_PRESERVE_OPS)
    try:
        PassManager(passes)(program.graph_module)
        return compiler._lower_ep_to_cadence(apply_torch_ops_passes(program)).exported_program()
    finally:
        compiler.TO_EDGE_PRESERVE_OPS[:] = preserved
