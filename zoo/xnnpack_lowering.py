"""ExecuTorch's XNNPACK flow as a user runs it: lower, summarize, execute."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Lowered:
    """A program lowered with the XnnpackPartitioner."""

    # get_delegation_info: subgraphs, nodes in and out, and per operator the
    # (delegated, non-delegated) counts.
    subgraphs: int
    delegated_nodes: int
    non_delegated_nodes: int
    by_operator: dict[str, tuple[int, int]]
    buffer: bytes | None  # the .pte, or None when to_executorch() failed
    error: str | None     # then: why (see lower_to_xnnpack)

    def partitions(self) -> tuple:
        return (self.subgraphs, self.delegated_nodes, self.non_delegated_nodes, self.by_operator)

    def run(self, inputs: tuple) -> list[torch.Tensor] | str:
        """Executes the .pte on ExecuTorch's runtime (XNNPACK kernels); the
        outputs, or the runtime's error as text."""
        from executorch.runtime import Runtime

        assert self.buffer is not None, self.error
        method = Runtime.get().load_program(self.buffer).load_method("forward")
        try:
            return [t.clone() for t in method.execute(list(inputs))]
        except RuntimeError as e:
            return str(e)

    def deviation(self, program: torch.export.ExportedProgram, batches: list[tuple],
                  unit: float | torch.Tensor = 1.0) -> float:
        """The largest difference of the .pte's first output on the runtime
        from `program`'s in torch, over `batches`, in `unit`s (a number, or
        one per channel of axis 1)."""
        from torch.utils._pytree import tree_flatten

        worst = 0.0
        for batch in batches:
            outputs = self.run(batch)
            assert not isinstance(outputs, str), outputs
            with torch.no_grad():
                expected = tree_flatten(program.module()(*batch))[0][0]
            scale = unit
            if isinstance(unit, torch.Tensor):
                scale = unit.reshape([1, -1] + [1] * (expected.dim() - 2))
            worst = max(worst, float(((outputs[0] - expected).abs() / scale).max()))
        return worst


def lower_to_xnnpack(program: torch.export.ExportedProgram) -> Lowered:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    try:
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    except RuntimeError as e:
        # XNNPACK 1.4.0 rejects some QAT conv1d programs outright ("Weight and
        # Input should both be quantized"), with or without qatfold.
        return Lowered(0, 0, 0, {}, None, f"lowering: {e}")
    info = get_delegation_info(edge.exported_program().graph_module)
    by_operator = {op: (b.delegated, b.non_delegated) for op, b in sorted(info.delegation_by_operator.items())}
    # XNNPACK does not take quantized conv3d; the dequantize_per_channel left
    # outside its delegate needs an out variant from ExecuTorch's
    # libquantized_ops_aot_lib, which does not load in the 1.4.0 wheel here,
    # so such programs cannot become a .pte with or without qatfold.
    try:
        buffer, error = edge.to_executorch().buffer, None
    except RuntimeError as e:
        buffer, error = None, f"to_executorch: {e}"
    return Lowered(info.num_delegated_subgraphs, info.num_delegated_nodes, info.num_non_delegated_nodes, by_operator,
                   buffer, error)
