"""Which output quantization a folded conv should keep, measured.

Folding moves the BatchNorm shift C into the conv, so the conv's output
quantization (calibrated on the conv output without C) now sees y + C. Three
choices for that quantization, each compared with the QAT-trained fake-quant
model (what training optimised) on the same inputs:

  (a) follow: take the parameters of the quantization that directly followed
      the folded BatchNorm (calibrated on y + C, when there is one);
  (b) widen:  stretch the range to cover [lo + min C, hi + max C] with the
      same number of steps (qatfold's output_range="widen");
  (c) keep:   leave it as it is (what qatfold and ExecuTorch's pass do).

Models: the demo's keyword spotter (examples/cadence_qat.py, same seed), and
the same model with BatchNorm statistics that put C far outside the range the
conv output was calibrated on (running_mean moved away from the data; a tiny
running_var with a large mean), as programs that really clip have them.

Run: .venv/bin/python -m tools.output_range_remedies   (prints a Markdown table)
"""

from __future__ import annotations

import copy
import logging
import typing
import warnings

import torch
import typing_extensions

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
if not hasattr(typing, "override"):
    typing.override = typing_extensions.override

import qatfold  # noqa: E402

QUANTIZE = "quantized_decomposed.quantize_per_tensor.default"
DEQUANTIZE = "quantized_decomposed.dequantize_per_tensor.default"


def train_demo_model():
    """The demo's QAT flow: the fake-quant model in eval mode, and its converted program's inputs."""
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e

    from examples.cadence_qat import KeywordSpotter

    torch.manual_seed(0)
    example = (torch.randn(4, 8, 64),)
    prepared = prepare_qat_pt2e(torch.export.export(KeywordSpotter().train(), example, strict=True).module(),
                                CadenceDefaultQuantizer(is_qat=True))
    allow_exported_model_train_eval(prepared)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.01)
    for _ in range(20):
        x = torch.randn(4, 8, 64)
        loss = torch.nn.functional.mse_loss(prepared(x), torch.tanh(x[:, :8]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    move_exported_model_to_eval(prepared)
    return prepared, example


def batch_norm_buffers(model) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(running_mean, running_var) of each BatchNorm of the prepared model, in order."""
    buffers = dict(model.named_buffers())
    means = sorted(name for name in buffers if name.endswith("running_mean"))
    return [(buffers[m], buffers[m.replace("running_mean", "running_var")]) for m in means]


def shifted_mean(model) -> None:
    """running_mean moved 3 standard deviations away from the data, on every BatchNorm."""
    for mean, var in batch_norm_buffers(model):
        mean += 3.0 * var.sqrt()


def tiny_variance(model) -> None:
    """A tiny running_var with a large running_mean on the first BatchNorm's channels 0-3."""
    mean, var = batch_norm_buffers(model)[0]
    var[:4] = 1e-3
    mean[:4] = 0.5


def steps_of_output(program) -> float:
    output = next(n for n in program.graph.nodes if n.op == "output").args[0][0]
    return float(output.args[1])


def with_output_quantization(program, conv: str, choose) -> None:
    """Sets the q/dq pair after `conv` to choose(q node, dq node) -> (scale, zero_point) or None."""
    by_name = {n.name: n for n in program.graph.nodes}
    quantize = next(iter(by_name[conv].users))
    if str(quantize.target) != QUANTIZE:
        return
    dequantize = next(iter(quantize.users))
    chosen = choose(quantize, dequantize)
    if chosen is None:
        return
    scale, zero_point = chosen
    for node in (quantize, dequantize):
        node.args = (node.args[0], scale, zero_point, *node.args[3:])
    program.graph_module.recompile()


def follow(quantize, dequantize):
    """(a): the parameters of the quantize that reads the folded chain's result."""
    after = [u for u in dequantize.users if str(u.target) == QUANTIZE]
    if len(after) != 1:
        return None
    return float(after[0].args[1]), int(after[0].args[2])


def deviation(program, reference, batches, step) -> tuple[float, float]:
    diffs = torch.cat([((program.module()(*b) - reference(*b)).abs() / step).flatten() for b in batches])
    return diffs.mean().item(), diffs.max().item()


def compare(name: str, edit) -> list[str]:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    prepared, example = train_demo_model()
    if edit is not None:
        edit(prepared)
    reference = copy.deepcopy(prepared)  # the QAT fake-quant model, eval mode
    unfolded = torch.export.export(convert_pt2e(prepared), example)
    folded = qatfold.fold(unfolded)
    step = steps_of_output(folded.program)  # the un-folded program ends in its batch_norm
    generator = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 8, 64, generator=generator),) for _ in range(8)]

    variants = {"(c) keep": folded.program, "(b) widen": qatfold.fold(unfolded, output_range="widen").program}
    program = qatfold.fold(unfolded).program
    for chain in folded.report.folded:
        with_output_quantization(program, chain.conv, follow)
    variants["(a) follow"] = program
    rows = []
    for label in ("(a) follow", "(b) widen", "(c) keep"):
        mean, worst = deviation(variants[label], reference, batches, step)
        rows.append(f"| {name} | {label} | {mean:.2f} | {worst:.1f} |")
    unfolded_mean, unfolded_worst = deviation(unfolded, reference, batches, step)
    rows.append(f"| {name} | un-folded program | {unfolded_mean:.2f} | {unfolded_worst:.1f} |")
    return rows


def main() -> None:
    print("| model | conv output quantization | mean deviation (steps) | max deviation (steps) |")
    print("| --- | --- | --- | --- |")
    for name, edit in (("demo keyword spotter", None), ("running_mean moved 3 std", shifted_mean),
                       ("tiny running_var, large mean", tiny_variance)):
        for row in compare(name, edit):
            print(row, flush=True)


if __name__ == "__main__":
    main()
