"""The README's table for a BatchNorm folded behind a quantized layer (XNNPACK).

Each XNNPACK zoo program (zoo/xnnpack_models.py, as the tests build and
cache it) is folded with `calibrate=` 8 batches and verified on 4 others, the
same seeds as tests/python/test_xnnpack_bn_fold.py, then lowered with
ExecuTorch's XnnpackPartitioner. Per folded layer: where its output
quantization came from, the saturated share before and after, the deviation
from the un-folded program, and its split: what the layers' own output
quantizations, which the folds remove, did in the un-folded program, and the
fold against the un-folded program without them. All in steps of the folded
layer's output quantization, and the deviation also in steps of the coarser
of the two quantizations per channel (the folded output's, or the removed
one's through the BatchNorm). Last, what XNNPACK delegated and, where the
.pte runs, its output on ExecuTorch's runtime against the folded program's
in torch, in its steps and in coarser steps (and the un-folded program's
against its own, where it lowers), on 8 held-out batches.
The trained programs come first (zoo/xnnpack_models.py TRAINED_CASES),
then the 4-step ones.

Run: .venv/bin/python -m tools.xnnpack_bn_table   (prints a Markdown table)
"""

from __future__ import annotations

import logging
import warnings

import torch

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import torchao.quantization.pt2e.quantize_pt2e  # noqa: E402,F401  (registers the quantized ops)

import qatfold  # noqa: E402
import zoo.xnnpack_models as xnnpack_zoo  # noqa: E402
from zoo.measure import output_steps  # noqa: E402
from zoo.program_cache import cached_archive  # noqa: E402
from zoo.xnnpack_lowering import lower_to_xnnpack  # noqa: E402

CASES = [(case, {}) for case in ("net2d:qat_trained_per_channel", "net1d:qat_trained_per_channel",
                                  "net3d:qat_trained_per_channel")]
CASES += [("net2d:qat_trained_per_tensor", {"per_tensor_weights": "requantize"})]
CASES += [(case, {}) for case in ("net2d:qat_per_channel", "net1d:qat_per_channel", "net3d:qat_per_channel")]
CASES += [("net2d:qat_per_tensor", {"per_tensor_weights": "requantize"})]


def batches(program, seed: int, count: int) -> list[tuple]:
    generator = torch.Generator().manual_seed(seed)
    (args, _) = program.example_inputs
    return [tuple(torch.randn(x.shape, generator=generator) for x in args) for _ in range(count)]


def lowering(original, folded, folded_convs, held_out: list[tuple]) -> str:
    """What XNNPACK delegated of the folded program and, where the .pte runs,
    its output on the runtime against the folded program's in torch, and the
    same for the un-folded program where it lowers, in steps of the folded
    program's output dequantize."""
    lowered = lower_to_xnnpack(folded)
    layers = [lowered.by_operator.get(op, (0, 0)) for op in ("aten_convolution_default", "aten_linear_default")]
    delegated, total = sum(d for d, _ in layers), sum(d + n for d, n in layers)
    batch_norm = sum(sum(counts) for op, counts in lowered.by_operator.items() if "batch_norm" in op)
    text = f"{delegated}/{total} convs+linears delegated, {batch_norm} batch_norm"
    if lowered.buffer is None:
        return text
    scale, coarser = output_steps(original, folded, folded_convs)
    text += (f"; runtime vs torch max {lowered.deviation(folded, held_out) / scale:.2f} steps, "
             f"{lowered.deviation(folded, held_out, coarser):.2f} coarser")
    plain = lower_to_xnnpack(original)
    if plain.buffer is None:
        return text + " (un-folded: does not lower)"
    return text + f" (un-folded: {plain.deviation(original, held_out) / scale:.2f})"


def main() -> None:
    print("| program | layer | source | saturated before -> after | vs un-folded mean / max "
          "| in coarser steps mean / max | removed quantizations mean / max "
          "| vs un-folded without them mean / max | XNNPACK 1.4.0 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, options in CASES:
        program = torch.export.load(cached_archive(f"xnnpack-{case}", lambda c=case: xnnpack_zoo.export_xnnpack(c)[0]))
        result = qatfold.fold(program, calibrate=batches(program, 1, 8), verify=batches(program, 2, 4), **options)
        folds = {c.conv: c for c in result.report.folded}
        name = case + "".join(f", {key}={value}" for key, value in options.items())
        lowered = lowering(program, result.program, result.report.folded, batches(program, 3, 8))
        for v in result.verification.convs:
            fold = folds[v.conv]
            source = fold.requantized["source"]
            if fold.requantized.get("weight_error") is not None:
                source += (f"; weight error {100 * fold.requantized['weight_error']:.2f}%, "
                           f"worst channel {100 * fold.requantized['channel_weight_error']:.1f}%")
            print(f"| {name} | {v.conv} ({fold.kind}) | {source} "
                  f"| {100 * v.saturation_before:.2f}% -> {100 * v.saturation_after:.2f}% "
                  f"| {v.mean_steps:.2f} / {v.max_steps:.2f} "
                  f"| {v.coarser_mean_steps:.2f} / {v.coarser_max_steps:.2f} "
                  f"| {v.removed_mean_steps:.2f} / {v.removed_max_steps:.2f} "
                  f"| {v.unquantized_mean_steps:.2f} / {v.unquantized_max_steps:.2f} | {lowered} |")
            name, lowered = "", ""


if __name__ == "__main__":
    main()
