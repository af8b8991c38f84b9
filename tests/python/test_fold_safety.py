"""Where the reference folds wrongly, qatfold must refuse or stay correct.

Each case starts from a real Cadence QAT program and edits the converted
graph the way real models can look (an extra reader of the conv output, a
bias tensor shared by two convs, a divisor built from another BatchNorm),
then exports it with torch.export and saves it.
"""

from __future__ import annotations

import json

import torch

from support.graph_compare import random_inputs
from support.oracle import conv_int32_biases, oracle_fold, qatfold_fold
from support.repo import FIXTURES, run_cli
from support.semantic import check_chain_within_one_step, node_values
from support.verification_check import assert_verified

aten = torch.ops.aten
DQ = torch.ops.quantized_decomposed.dequantize_per_tensor.default
Q = torch.ops.quantized_decomposed.quantize_per_tensor.default


def converted(name: str):
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer

    from zoo.flows import qat_convert
    from zoo.models import build

    model, example = build(name)
    return qat_convert(model, example, CadenceDefaultQuantizer(is_qat=True)), example


def nodes_with(graph, target):
    return [n for n in graph.nodes if n.op == "call_function" and n.target == target]


def conv_output_dq(conv):
    q = next(u for u in conv.users if u.target == Q)
    return next(u for u in q.users if u.target == DQ)


def chain_batch_norm(conv):
    """The batch_norm at the end of a conv's QAT chain."""
    node = next(u for u in conv_output_dq(conv).users if u.target == aten.div.Tensor)
    while node.target != aten.batch_norm.default:
        node = next(iter(node.users))
    return node


def save(module, example, path):
    module.recompile()
    torch.export.save(torch.export.export(module, example), path)
    return path


def report_of(path):
    return json.loads(run_cli("fold", str(path), "--dry-run", "--json").stdout)


def bn_nodes(program):
    return [n for n in program.graph.nodes if n.op == "call_function" and "batch_norm" in str(n.target)]


def test_conv_output_read_outside_the_chain_is_not_folded(tmp_path):
    module, example = converted("conv2d_nobias")
    graph = module.graph
    conv = nodes_with(graph, aten.conv2d.default)[0]
    dq = conv_output_dq(conv)
    output = next(n for n in graph.nodes if n.op == "output")
    result = output.args[0][0]
    with graph.inserting_before(output):
        extra = graph.call_function(aten.mul.Tensor, (dq, 0.5))
        total = graph.call_function(aten.add.Tensor, (result, extra))
    output.args = ((total,),)
    path = save(module, example, tmp_path / "shared_output.pt2")

    unfolded = torch.export.load(path)
    ours = qatfold_fold(path, tmp_path / "ours.pt2")
    assert_verified(unfolded, ours, report_of(path)["folded"])
    reference = oracle_fold(path)
    report = report_of(path)
    assert report["folded_count"] == 0
    assert "also used by" in report["skipped"][0]["reason"]
    assert len(bn_nodes(ours)) == 1
    x = random_inputs(unfolded)
    assert torch.equal(ours.module()(*x), unfolded.module()(*x))
    # The reference folds anyway, and what the extra reader sees changes.
    assert not torch.allclose(reference.module()(*x), unfolded.module()(*x), atol=1e-3)


def test_bias_shared_by_two_convs_gets_one_copy_per_conv(tmp_path):
    module, example = converted("two_branches")
    graph = module.graph
    left, right = nodes_with(graph, aten.conv2d.default)
    right.args[2].args = (left.args[2].args[0],) + tuple(right.args[2].args[1:])  # right's bias reads left's tensor
    graph.eliminate_dead_code()
    path = save(module, example, tmp_path / "shared_bias.pt2")

    unfolded = torch.export.load(path)
    ours = qatfold_fold(path, tmp_path / "ours.pt2")
    assert_verified(unfolded, ours, report_of(path)["folded"])
    report = report_of(path)
    assert report["folded_count"] == 2
    assert all(chain["copied_bias"] for chain in report["folded"])
    biases = conv_int32_biases(ours)
    left_node, right_node = (n for n in ours.graph.nodes if n.target == aten.conv2d.default)
    assert left_node.args[2].args[0] is not right_node.args[2].args[0]
    for seed in range(2):
        values = node_values(unfolded, random_inputs(unfolded, seed))
        for chain in report["folded"]:
            check_chain_within_one_step(unfolded, ours, chain, values)
    # The reference writes both corrections into the one shared tensor.
    reference_biases = conv_int32_biases(oracle_fold(path))
    assert torch.equal(reference_biases[left_node.name], reference_biases[right_node.name])
    assert not torch.equal(biases[left_node.name], biases[right_node.name])


def test_divisor_from_another_batch_norm_is_not_folded(tmp_path):
    module, example = converted("two_branches")
    graph = module.graph
    left, right = nodes_with(graph, aten.conv2d.default)
    left_div = next(u for u in conv_output_dq(left).users if u.target == aten.div.Tensor)
    right_bn = chain_batch_norm(right)
    weight, running_var, eps = right_bn.args[1], right_bn.args[4], right_bn.args[7]
    with graph.inserting_before(left_div):
        shifted = graph.call_function(aten.add.Tensor, (running_var, eps))
        root = graph.call_function(aten.sqrt.default, (shifted,))
        scale = graph.call_function(aten.div.Tensor, (weight, root))
        reshaped = graph.call_function(aten.reshape.default, (scale, [1, -1, 1, 1]))
    left_div.args = (left_div.args[0], reshaped)
    graph.eliminate_dead_code()
    path = save(module, example, tmp_path / "foreign_scale.pt2")

    unfolded = torch.export.load(path)
    ours = qatfold_fold(path, tmp_path / "ours.pt2")
    assert_verified(unfolded, ours, report_of(path)["folded"])
    report = report_of(path)
    assert report["folded_count"] == 1
    # What is left, y * r with r_c = this batch_norm's scale over the other's,
    # is negative in a channel here: no per-tensor weight scale takes it.
    refused = [s for s in report["skipped"] if s["qat_chain"]]
    assert [s["code"] for s in refused] == ["non-finite-eps-factor"]
    assert "not a positive finite number" in refused[0]["reason"]
    assert len(bn_nodes(ours)) == 1
    values = node_values(unfolded, random_inputs(unfolded))
    check_chain_within_one_step(unfolded, ours, report["folded"][0], values)
    # The reference folds the foreign chain as if the scales cancelled.
    assert len(bn_nodes(oracle_fold(path))) == 0


def test_ptq_program_passes_through_unchanged(tmp_path):
    from executorch.backends.cadence.aot.quantizer.quantizer import CadenceDefaultQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from zoo.models import build

    model, example = build("chain3")
    captured = torch.export.export(model.eval(), example, strict=True).module()
    prepared = prepare_pt2e(captured, CadenceDefaultQuantizer())
    prepared(*example)
    path = tmp_path / "ptq.pt2"
    torch.export.save(torch.export.export(convert_pt2e(prepared), example), path)

    unfolded = torch.export.load(path)
    ours = qatfold_fold(path, tmp_path / "ours.pt2")
    assert_verified(unfolded, ours, report_of(path)["folded"])
    assert report_of(path)["folded_count"] == 0
    for seed in range(3):
        x = random_inputs(unfolded, seed)
        assert torch.equal(ours.module()(*x), unfolded.module()(*x))


def test_float_program_passes_through_unchanged(tmp_path):
    path = FIXTURES / "float_cnn.pt2"
    unfolded = torch.export.load(path)
    ours = qatfold_fold(path, tmp_path / "ours.pt2")
    assert_verified(unfolded, ours, report_of(path)["folded"])
    report = report_of(path)
    assert report["folded_count"] == 0 and report["prepared_biases"] == []
    assert [s["qat_chain"] for s in report["skipped"]] == [False]
    assert len(bn_nodes(ours)) == 1
    x = random_inputs(unfolded)
    assert torch.equal(ours.module()(*x), unfolded.module()(*x))
