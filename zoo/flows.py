"""The QAT flows behind the test programs: capture, prepare_qat_pt2e, a few
seeded training steps, convert_pt2e, export (the Cadence flow of ExecuTorch's
own end-to-end test, and the same with dynamic shapes)."""

from __future__ import annotations

import logging
import warnings

import torch

warnings.filterwarnings("ignore")
logging.getLogger("torchao").setLevel(logging.ERROR)


def export_float(model: torch.nn.Module, example: tuple) -> torch.export.ExportedProgram:
    return torch.export.export(model.eval(), example)


def qat_convert(model: torch.nn.Module, example: tuple, quantizer, steps: int = 4,
                teacher: torch.nn.Module | None = None, dynamic_shapes=None,
                check_guards: bool = True) -> torch.nn.Module:
    """prepare_qat_pt2e, SGD steps on synthetic data, eval, convert_pt2e.

    Without a `teacher` the targets are noise: a few steps make a program of
    QAT's shape. With one (a float model in eval) the targets are its outputs
    and the learning rate decays linearly to 0, as a training run ends: the
    last steps barely move the weights, so the BatchNorms' running statistics
    and the observers' ranges describe the model that is converted.

    `dynamic_shapes` (as torch.export.export takes them) are given to the
    capture, so the converted module keeps them for the export after it.
    `check_guards=False` captures without the guards submodule torch 2.13
    adds, for a quantizer whose annotation passes take no call_module
    (Cortex-M's)."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e

    model.train()
    captured = torch.export.export(model, example, dynamic_shapes=dynamic_shapes, strict=True).module(
        check_guards=check_guards)
    prepared = prepare_qat_pt2e(captured, quantizer)
    allow_exported_model_train_eval(prepared)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.01)
    decay = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps) if teacher else None
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        batch = tuple(torch.randn(x.shape, generator=generator) for x in example)
        if teacher is None:
            target = torch.randn_like(prepared(*batch))
        else:
            with torch.no_grad():
                target = teacher(*batch)
        loss = torch.nn.functional.mse_loss(prepared(*batch), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if decay is not None:
            decay.step()
    move_exported_model_to_eval(prepared)
    return convert_pt2e(prepared)


def export_qat_cadence(model: torch.nn.Module, example: tuple) -> torch.export.ExportedProgram:
    """The Cadence QAT flow of ExecuTorch's own end-to-end test, then export."""
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer

    converted = qat_convert(model, example, CadenceDefaultQuantizer(is_qat=True))
    return torch.export.export(converted, example)


def export_qat_dynamic(model: torch.nn.Module, example: tuple, quantizer,
                       dynamic_shapes) -> torch.export.ExportedProgram:
    """The QAT flow with `dynamic_shapes` at capture and at the final export:
    how a user exports a model that takes any batch size or length."""
    converted = qat_convert(model, example, quantizer, dynamic_shapes=dynamic_shapes)
    return torch.export.export(converted, example, dynamic_shapes=dynamic_shapes)
