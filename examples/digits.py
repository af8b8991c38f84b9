"""Accuracy on real data: does the folded model still classify the same?

scikit-learn's digits (1797 8x8 images of handwritten digits, bundled with
scikit-learn: nothing is downloaded) train three small models: a 2-D CNN
with a depthwise and a padding="same" conv, a 1-D CNN (image rows as
channels), and an MLP with BatchNorm1d. Each is trained in float, then
quantization-aware with three of ExecuTorch's quantizers (Cadence, XNNPACK,
Arm TOSA-1.0+INT), converted, folded with qatfold, and lowered. Top-1 on the
397 test images is printed at every stage:

    float -> QAT (fake-quant) -> converted (un-folded) -> folded -> backend runtime

with the folded program's agreement with the un-folded one (qatfold's
``verify=`` with ``labels=``), how many batch_norms each fold leaves (and
why), and on each backend's runtime that runs here, un-folded and folded:

- XNNPACK: the .pte on ExecuTorch's runtime with the XNNPACK delegate;
- Cadence: ExecuTorch's reference kernels in Python, as shipped and with the
  sign patch below (as shipped, 1.4.0's quantized_linear and quantized_relu
  negate their output multiplier, so every Cadence program scores chance);
- Arm: the TOSA reference model from tosa-tools, running the delegate; the
  number of convs and batch_norms left outside the delegate is printed too.

Run: .venv/bin/python examples/digits.py [--quick] [--no-runtimes] [--json FILE]
(`make accuracy`). --quick trains for fewer epochs: the test suite runs it
that way (tests/python/test_digits_accuracy.py).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

import qatfold

compiler = qatfold.cadence_compiler()  # ExecuTorch's Cadence compile, with the Python 3.11 shim it needs

TRAIN, CALIBRATION = 1400, 397  # images; the rest (397) is the test set


# --- the models ---------------------------------------------------------

class CNN2d(nn.Module):
    """Input [N, 1, 8, 8]: conv, depthwise conv with padding="same", strided conv, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding="same", groups=8), nn.BatchNorm2d(8)
        self.conv3, self.bn3 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.flatten(1))


class CNN1d(nn.Module):
    """Input [N, 8, 8] (the image's rows as 8 channels of length 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv1d(8, 16, 3, padding=1), nn.BatchNorm1d(16)
        self.conv2, self.bn2 = nn.Conv1d(16, 16, 3, padding=1, groups=4, bias=False), nn.BatchNorm1d(16)
        self.fc = nn.Linear(16 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.flatten(1))


class MLP(nn.Module):
    """Input [N, 64]: linear + BatchNorm1d + ReLU, twice, then the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(64, 32), nn.BatchNorm1d(32)
        self.fc2, self.bn2 = nn.Linear(32, 32), nn.BatchNorm1d(32)
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.fc1(x)))
        x = F.relu(self.bn2(self.fc2(x)))
        return self.fc3(x)


MODELS = {"cnn2d": (CNN2d, (1, 8, 8)), "cnn1d": (CNN1d, (8, 8)), "mlp": (MLP, (64,))}


def quantizer(name: str):
    """A QAT quantizer as each backend's users make it."""
    if name == "cadence":
        from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer

        return CadenceDefaultQuantizer(is_qat=True)
    if name == "xnnpack":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        made = XNNPACKQuantizer()
        made.set_global(get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
        return made
    from executorch.backends.arm.quantizer import TOSAQuantizer, get_symmetric_quantization_config

    made = TOSAQuantizer(arm_compile_spec())
    made.set_global(get_symmetric_quantization_config(is_qat=True))
    return made


def arm_compile_spec():
    from executorch.backends.arm.tosa.compile_spec import TosaCompileSpec

    return TosaCompileSpec("TOSA-1.0+INT")


QUANTIZERS = ("cadence", "xnnpack", "arm")


# --- data and training --------------------------------------------------

@dataclass(frozen=True)
class Digits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def shaped(self, shape: tuple[int, ...]) -> Digits:
        return Digits(self.train_x.reshape(-1, *shape), self.train_y, self.test_x.reshape(-1, *shape), self.test_y)


def load(seed: int = 0) -> Digits:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    train, test = order[:TRAIN], order[TRAIN:]
    return Digits(images[train], labels[train], images[test], labels[test])


def train(model, data: Digits, epochs: int, lr: float, seed: int) -> None:
    """Adam on batches of 100, shuffled with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(data.train_x), generator=generator)
        for start in range(0, len(order), 100):
            batch = order[start:start + 100]
            optimizer.zero_grad()
            F.cross_entropy(model(data.train_x[batch]), data.train_y[batch]).backward()
            optimizer.step()


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return int((scores.argmax(-1) == labels).sum()) / len(labels)


def qat(model: nn.Module, quantizer_name: str, data: Digits, epochs: int, seed: int):
    """prepare_qat_pt2e (exported with a dynamic batch), QAT fine-tuning,
    eval, convert_pt2e; returns (QAT accuracy, the converted program
    exported for the test set's batch)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    torch.manual_seed(seed)
    batch = torch.export.Dim("batch", min=2)
    # strict=True: Cadence's quantizer annotates nothing in a non-strict capture.
    exported = torch.export.export(model, (data.train_x[:100],), dynamic_shapes=({0: batch},), strict=True)
    prepared = prepare_qat_pt2e(exported.module(), quantizer(quantizer_name))
    train(prepared, data, epochs, lr=1e-3, seed=seed)
    move_exported_model_to_eval(prepared)
    with torch.no_grad():
        qat_accuracy = accuracy(prepared(data.test_x), data.test_y)
    converted = convert_pt2e(prepared)
    return qat_accuracy, torch.export.export(converted, (data.test_x,))


# --- the backends -------------------------------------------------------

@contextlib.contextmanager
def cadence_sign_patch():
    """ExecuTorch 1.4.0's Cadence reference kernels for quantized_linear and
    quantized_relu compute their output scale as
    1 / (-out_multiplier * 2^-31 * 2^out_shift), while the QuantFusionPass
    that makes these ops passes a positive multiplier: every output lands
    on the wrong side of its zero point. Within this block both kernels get
    the multiplier negated, which cancels the sign (nothing else changes)."""
    from executorch.backends.cadence.aot import ref_implementations as kernels

    linear, relu = kernels.quantized_linear_common, kernels.quantized_relu_common

    def fixed_linear(src, weight, bias, in_zero_point, weight_zero_point, out_multiplier, out_shift,
                     out_zero_point):
        return linear(src, weight, bias, in_zero_point, weight_zero_point, -out_multiplier, out_shift,
                      out_zero_point)

    def fixed_relu(x, x_zero_point, out_zero_point, out_multiplier, out_shift):
        return relu(x, x_zero_point, out_zero_point, -out_multiplier, out_shift)

    kernels.quantized_linear_common, kernels.quantized_relu_common = fixed_linear, fixed_relu
    try:
        yield
    finally:
        kernels.quantized_linear_common, kernels.quantized_relu_common = linear, relu


def run_cadence(program, x: torch.Tensor, folded: bool) -> dict[str, object]:
    """Cadence's compile from the converted program: the fold (ExecuTorch's
    own FuseQATConvBN when `folded` is False, as Cadence's compile runs it
    without qatfold), QuantFusionPass with the Cadence quantizer's patterns,
    the torch-ops passes and the lowering to Cadence's edge dialect; then
    the reference kernels, as shipped and patched. Also the batch_norms
    left."""
    import executorch.backends.cadence.aot.ref_implementations  # noqa: F401 (the Python kernels)
    from executorch.backends.cadence.aot.passes import apply_torch_ops_passes
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN
    from executorch.exir.pass_manager import PassManager

    program = copy.deepcopy(program)  # the passes work in place
    if not folded:
        PassManager([FuseQATConvBN(program)])(program.graph_module)
    patterns = [q.pattern for q in quantizer("cadence").quantizers]
    # ExecuTorch 1.4.0's lowering grows this module-level list fourfold on
    # every call (docs/upstream.md): restore it, or a dozen lowerings run
    # out of memory.
    preserved = list(compiler.TO_EDGE_PRESERVE_OPS)
    try:
        PassManager([compiler.QuantFusionPass(patterns)])(program.graph_module)
        lowered = compiler._lower_ep_to_cadence(apply_torch_ops_passes(program)).exported_program()
    finally:
        compiler.TO_EDGE_PRESERVE_OPS[:] = preserved
    targets = [str(n.target) for n in lowered.graph.nodes if n.op == "call_function"]
    with torch.no_grad():
        shipped = lowered.module()(x)
        with cadence_sign_patch():
            patched = lowered.module()(x)
    return {"scores": shipped, "patched_scores": patched, "batch_norms": sum("batch_norm" in t for t in targets)}


def run_xnnpack(program, x: torch.Tensor, folded: bool) -> dict[str, object]:
    """to_edge_transform_and_lower with the XnnpackPartitioner, to_executorch,
    and the .pte on ExecuTorch's runtime."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    try:
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        buffer = edge.to_executorch().buffer
    except RuntimeError as e:
        return {"error": f"does not lower: {str(e).strip().splitlines()[0][:120]}"}
    outside = [str(n.target) for n in edge.exported_program().graph.nodes if n.op == "call_function"]
    method = Runtime.get().load_program(buffer).load_method("forward")
    return {"scores": method.execute([x])[0].clone(), "batch_norms": sum("batch_norm" in t for t in outside)}


def run_arm(program, x: torch.Tensor, folded: bool) -> dict[str, object]:
    """to_edge_transform_and_lower with the TOSAPartitioner (TOSA-1.0+INT)
    and the delegate on the TOSA reference model (tosa-tools); the convs and
    batch_norms it leaves outside the delegate."""
    from executorch.backends.arm.test.runner_utils import TosaReferenceModelDispatch
    from executorch.backends.arm.tosa.partitioner import TOSAPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(program, partitioner=[TOSAPartitioner(arm_compile_spec())])
    lowered = edge.exported_program()
    outside = [str(n.target) for n in lowered.graph.nodes if n.op == "call_function"]
    with stdout_to_stderr(), torch.no_grad(), TosaReferenceModelDispatch():
        scores = lowered.module()(x)
    return {"scores": scores, "batch_norms": sum("batch_norm" in t for t in outside),
            "convs_outside": sum("convolution" in t for t in outside)}


@contextlib.contextmanager
def stdout_to_stderr():
    """The reference model prints its warnings from C++ on file descriptor
    1: send them to stderr, so stdout holds only the table."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


RUNTIMES = {"cadence": run_cadence, "xnnpack": run_xnnpack, "arm": run_arm}


# --- one model through one quantizer ------------------------------------

@dataclass
class Row:
    model: str
    quantizer: str
    float: float
    qat: float
    converted: float
    folded: float
    agreement: float  # folded vs un-folded top-1, from qatfold's verify
    agreeing: int
    samples: int
    verified_converted: float  # verify's accuracies of the two programs (its own run of them)
    verified_folded: float
    batch_norms_before: int
    batch_norms_after: int
    kept: list[str] = field(default_factory=list)  # "batch_norm: reason" of each one left
    runtime: dict[str, object] = field(default_factory=dict)


def batch_norm_count(program) -> int:
    return sum("batch_norm" in str(n.target) for n in program.graph.nodes if n.op == "call_function")


def fold_and_measure(name: str, quantizer_name: str, model: nn.Module, float_accuracy: float, data: Digits,
                     epochs: int, seed: int, runtimes: bool) -> Row:
    qat_accuracy, program = qat(copy.deepcopy(model), quantizer_name, data, epochs, seed)
    # Per-tensor weights (Cadence's) are re-quantized with their BatchNorm:
    # lossy, so only on request; the report gives the weight error.
    result = qatfold.fold(program, calibrate=[(data.train_x[:CALIBRATION],)], per_tensor_weights="requantize",
                          verify=(data.test_x,), labels=data.test_y, explain=True)
    top1 = result.verification.top1
    with torch.no_grad():
        converted = accuracy(program.module()(data.test_x), data.test_y)
        folded = accuracy(result.program.module()(data.test_x), data.test_y)
    row = Row(name, quantizer_name, float_accuracy, qat_accuracy, converted, folded, top1.agreement, top1.agreeing,
              top1.samples, top1.accuracy_before, top1.accuracy_after, batch_norm_count(program),
              batch_norm_count(result.program),
              [f"{s.batch_norm}: {s.reason}" for s in result.report.skipped])
    if runtimes:
        for stage, which in (("unfolded", program), ("folded", result.program)):
            try:
                ran = RUNTIMES[quantizer_name](which, data.test_x, stage == "folded")
            except Exception as e:  # a backend that cannot take the program: say where and why
                frame = e.__traceback__
                while frame.tb_next is not None:
                    frame = frame.tb_next
                where = frame.tb_frame.f_code.co_name
                ran = {"error": f"fails in {where}: {str(e).strip().splitlines()[0][:100]}"}
            row.runtime[stage] = {key: (accuracy(value, data.test_y) if key.endswith("scores") else value)
                                  for key, value in ran.items()}
    return row


def run(quick: bool, seed: int = 0, models=tuple(MODELS), quantizers=QUANTIZERS, runtimes: bool = True) -> list[Row]:
    digits = load(seed)
    rows = []
    for name in models:
        factory, shape = MODELS[name]
        data = digits.shaped(shape)
        torch.manual_seed(seed)
        model = factory()
        train(model, data, epochs=8 if quick else 20, lr=1e-2, seed=seed)
        model.eval()
        with torch.no_grad():
            float_accuracy = accuracy(model(data.test_x), data.test_y)
        for quantizer_name in quantizers:
            started = time.monotonic()
            rows.append(fold_and_measure(name, quantizer_name, model.train(), float_accuracy, data,
                                         epochs=2 if quick else 4, seed=seed, runtimes=runtimes))
            model.eval()
            print(f"  {name} / {quantizer_name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    return rows


# --- the table ----------------------------------------------------------

def percent(value) -> str:
    return f"{100 * value:.1f}" if isinstance(value, float) else "-"


def runtime_cell(ran: dict[str, object] | None, key: str = "scores") -> str:
    if not ran:
        return "-"
    if "error" in ran:
        return str(ran["error"])
    text = percent(ran.get(key))
    extra = []
    if ran.get("convs_outside"):
        extra.append(f"{ran['convs_outside']} conv outside")
    if ran.get("batch_norms"):
        extra.append(f"{ran['batch_norms']} bn outside" if "convs_outside" in ran else f"{ran['batch_norms']} bn")
    return text + (f" ({', '.join(extra)})" if extra else "")


def table(rows: list[Row]) -> str:
    lines = ["| model | quantizer | float | QAT | converted | folded | agree | batch_norm | runtime | "
             "runtime, without qatfold | runtime, folded |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
    names = {"cadence": "Cadence reference kernels", "xnnpack": "XNNPACK .pte", "arm": "TOSA reference model"}
    for r in rows:
        cells = [r.model, r.quantizer, percent(r.float), percent(r.qat), percent(r.converted), percent(r.folded),
                 f"{100 * r.agreement:.2f}", f"{r.batch_norms_before} -> {r.batch_norms_after}"]
        if not r.runtime:
            lines.append("| " + " | ".join(cells + ["-", "-", "-"]) + " |")
            continue
        lines.append("| " + " | ".join(cells + [names[r.quantizer] + (", as shipped" if r.quantizer == "cadence"
                                                                       else ""),
                                                 runtime_cell(r.runtime.get("unfolded")),
                                                 runtime_cell(r.runtime.get("folded"))]) + " |")
        if r.quantizer == "cadence":
            lines.append("| " + " | ".join([""] * 8 + ["Cadence reference kernels, sign patched",
                                                       runtime_cell(r.runtime.get("unfolded"), "patched_scores"),
                                                       runtime_cell(r.runtime.get("folded"), "patched_scores")])
                         + " |")
    kept = [f"- {r.model} / {r.quantizer}: {k}" for r in rows for k in r.kept]
    if kept:
        lines += ["", "batch_norms the fold keeps, with qatfold's reason:"] + kept
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs (the test suite's run)")
    parser.add_argument("--no-runtimes", action="store_true", help="stop at the folded program in torch")
    parser.add_argument("--json", help="also write the rows as JSON to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, of: " + ", ".join(MODELS))
    parser.add_argument("--quantizers", default=",".join(QUANTIZERS), help="comma-separated, of: "
                        + ", ".join(QUANTIZERS))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    started = time.monotonic()
    rows = run(args.quick, args.seed, tuple(args.models.split(",")), tuple(args.quantizers.split(",")),
               not args.no_runtimes)
    print(f"Top-1 (%) on the {rows[0].samples} test images of scikit-learn's digits, at every stage "
          f"(seed {args.seed}{', --quick' if args.quick else ''}; {time.monotonic() - started:.0f} s). 'agree': the "
          "folded program's top-1 against the un-folded one's (qatfold's verify with labels). Runtime without "
          "qatfold: the converted program as the backend takes it (Cadence: after ExecuTorch's own "
          "FuseQATConvBN, as its compile runs).\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
