"""The common QAT mistakes, made with the real flow, are reported as such:
a program exported in training mode (no move_exported_model_to_eval) is
left byte for byte with a warning, a program the Cadence quantizer never
annotated (non-strict capture) folds with a warning, and strict mode fails
on both, on the command line (exit 4, output written) and in Python
(QatfoldError with the report attached)."""

from __future__ import annotations

import json

import pytest
import torch

import qatfold
from support.repo import FIXTURES, run_cli
from zoo.program_cache import cached_archive


def qat_program(*, eval_mode: bool, strict_capture: bool):
    def build():
        from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
        from torchao.quantization.pt2e import move_exported_model_to_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

        from zoo.models import build as build_model

        model, example = build_model("chain3")
        captured = torch.export.export(model.train(), example, strict=strict_capture).module()
        prepared = prepare_qat_pt2e(captured, CadenceDefaultQuantizer(is_qat=True))
        prepared(*example)
        if eval_mode:
            move_exported_model_to_eval(prepared)
        return torch.export.export(convert_pt2e(prepared), example)

    return cached_archive(f"cadence-chain3-eval{eval_mode}-strict{strict_capture}", build)


def test_training_mode_is_left_as_it_came_with_the_fix_named(tmp_path):
    path = qat_program(eval_mode=False, strict_capture=True)
    out = tmp_path / "out.pt2"
    result = run_cli("fold", str(path), "-o", str(out))
    assert "warning: 3 batch_norm(s) run in training mode" in result.stdout
    assert "move_exported_model_to_eval" in result.stdout
    assert out.read_bytes() == path.read_bytes()
    strict = run_cli("fold", str(path), "-o", str(out), "--strict", check=False)
    assert strict.returncode == 4 and strict.stderr.count("batch_norm runs in training mode") == 3
    assert out.read_bytes() == path.read_bytes()

    program = torch.export.load(path)
    report = qatfold.fold(program).report
    assert report.warnings and "training mode" in report.warnings[0] and not report.changed
    with pytest.raises(qatfold.QatfoldError, match="strict: 3 batch_norm.* training mode") as raised:
        qatfold.fold(program, strict=True)
    assert raised.value.report.strict_failed and len(raised.value.report.strict_failures) == 3
    assert raised.value.result.program is not None


def test_an_unannotated_program_folds_with_a_warning(tmp_path):
    path = qat_program(eval_mode=True, strict_capture=False)
    program = torch.export.load(path)
    assert not any("quantize" in str(n.target) for n in program.graph.nodes)  # the quantizer annotated nothing
    report = json.loads(run_cli("fold", str(path), "--dry-run", "--json").stdout)
    assert report["folded_count"] == 3 and not report["quantized_program"]
    assert "the program is not quantized" in report["warnings"][0]
    assert "strict=True" in report["warnings"][0]
    assert run_cli("fold", str(path), "--dry-run", "--strict", check=False).returncode == 4
    with pytest.raises(qatfold.QatfoldError, match="strict: 3 batch_norm\\(s\\) and no quantize"):
        qatfold.fold(program, strict=True)


def test_strict_passes_a_program_that_folds_completely(tmp_path):
    path = qat_program(eval_mode=True, strict_capture=True)
    assert run_cli("fold", str(path), "-o", str(tmp_path / "o.pt2"), "--strict").returncode == 0
    result = qatfold.fold(torch.export.load(FIXTURES / "qat_cadence_cnn.pt2"), strict=True)
    assert result.report.folded_count == 2 and not result.report.strict_failed and not result.report.warnings


def test_strict_in_the_pass_and_the_module_command(tmp_path):
    path = qat_program(eval_mode=False, strict_capture=True)
    program = torch.export.load(path)
    with pytest.raises(qatfold.QatfoldError, match="FuseQATConvBN: strict"):
        qatfold.FuseQATConvBN(program, strict=True)(program.graph_module)
    import subprocess
    import sys

    inputs = tmp_path / "inputs.pt"
    torch.save(tuple(program.example_inputs[0]), inputs)
    result = subprocess.run([sys.executable, "-m", "qatfold", "fold", str(path), "-o", str(tmp_path / "o.pt2"),
                             "--calibrate", str(inputs), "--strict"], capture_output=True, text=True)
    assert result.returncode == 4, result.stderr[-2000:]
    assert "qatfold: strict: 3 batch_norm(s) left" in result.stderr
    assert (tmp_path / "o.pt2").exists()


def test_a_batch_norm_of_a_float_program_that_cannot_fold_says_the_program_is_not_quantized():
    class ReluThenBatchNorm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.bn = torch.nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(torch.relu(self.conv(x)))

    program = torch.export.export(ReluThenBatchNorm().eval(), (torch.randn(1, 3, 8, 8),))
    report = qatfold.fold(program, explain=True).report
    (skipped,) = report.skipped
    assert skipped.code == "not-quantized"
    assert skipped.reason == ("the program is not quantized (no quantize or dequantize op): no quantized conv or "
                              "linear to fold it into, and a float model's batch_norms are torch's to fold")
    assert qatfold.REFUSAL_CODES["not-quantized"]["message"].startswith("the program is not quantized")
