"""Verification with labels: top-1 agreement between the un-folded and the
folded program and each one's accuracy, recomputed here independently (both
programs run on the batches, argmax over the last dimension of the first
output, counted by hand); and one-line errors for labels that cannot be
right. The digits example (test_digits_accuracy.py) covers real classifiers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import qatfold
from support.repo import QAT, REPO, clipping_program, run_cli


def batches_and_labels(program, count: int = 3, seed: int = 1):
    """`count` batches the program takes and random labels for the rows of
    its output (its last dimension scores the classes)."""
    generator = torch.Generator().manual_seed(seed)
    batches = [(torch.randn(2, 3, 16, 16, generator=generator),) for _ in range(count)]
    with torch.no_grad():
        output = program.module()(*batches[0])
    rows, classes = output.numel() // output.shape[-1], output.shape[-1]
    labels = [torch.randint(0, classes, (rows,), generator=generator) for _ in range(count)]
    return batches, labels, classes


def counted(original, folded, batches, labels):
    """(agreeing, correct before, correct after, samples), counted here."""
    agreeing = before = after = samples = 0
    with torch.no_grad():
        for batch, label in zip(batches, labels):
            a = original.module()(*batch)
            b = folded.module()(*batch)
            top_a = a.reshape(-1, a.shape[-1]).argmax(-1)
            top_b = b.reshape(-1, b.shape[-1]).argmax(-1)
            agreeing += int((top_a == top_b).sum())
            before += int((top_a == label).sum())
            after += int((top_b == label).sum())
            samples += top_a.numel()
    return agreeing, before, after, samples


@pytest.mark.parametrize("given", ["per batch", "one tensor"])
def test_top1_with_labels_matches_an_independent_count(given):
    # The clipping program: its fold saturates, so the two programs disagree
    # on some samples and the counts differ between them.
    original = clipping_program()
    batches, labels, _ = batches_and_labels(original)
    result = qatfold.fold(original, verify=batches, labels=labels if given == "per batch" else torch.cat(labels))
    top1 = result.verification.top1
    agreeing, before, after, samples = counted(original, result.program, batches, labels)
    assert (top1.agreeing, top1.correct_before, top1.correct_after, top1.samples) == (agreeing, before, after,
                                                                                     samples)
    assert top1.agreeing < top1.samples  # this fold moves some top-1 (else the count could not be checked)
    assert top1.agreement == agreeing / samples and top1.accuracy_after == after / samples
    # Named as the outputs' deviations are: the folded program's output node.
    output = next(n for n in result.program.graph.nodes if n.op == "output").args[0][0].name
    assert top1.output == output == result.verification.outputs[0].name
    text = result.verification.text()
    assert f"folded agrees with un-folded on {100 * agreeing / samples:.2f}% ({agreeing}/{samples})" in text
    assert f"accuracy un-folded {100 * before / samples:.2f}% ({before}), folded {100 * after / samples:.2f}%" in text


def test_top1_without_labels_gives_the_agreement_only():
    original = torch.export.load(QAT)
    batches, labels, _ = batches_and_labels(original, count=2)
    top1 = qatfold.fold(original, verify=batches, top1=True).verification.top1
    agreeing, _, _, samples = counted(original, qatfold.fold(original).program, batches, labels)
    assert (top1.agreeing, top1.samples, top1.correct_before, top1.accuracy_after) == (agreeing, samples, None, None)
    assert qatfold.fold(original, verify=batches).verification.top1 is None  # not asked for


def test_fuse_pass_verifies_with_labels():
    program = clipping_program()
    batches, labels, _ = batches_and_labels(program)
    expected = qatfold.fold(program, verify=batches, labels=labels).verification.top1
    fuse = qatfold.FuseQATConvBN(program, verify=batches, labels=labels)
    fuse(program.graph_module)
    assert fuse.verification.top1 == expected


@pytest.mark.parametrize("labels, message", [
    (lambda labels, classes: labels[:2], "labels: 2 tensors of labels for 3 batch(es)"),
    (lambda labels, classes: [labels[0][:-1]] + labels[1:], "labels[0]: "),
    (lambda labels, classes: torch.cat(labels)[1:], "labels: "),
    (lambda labels, classes: [t.float() for t in labels],
     "labels[0] must hold integer class indices, not torch.float32"),
    (lambda labels, classes: [t.reshape(-1, 1) for t in labels], "labels[0] must be 1-D"),
    (lambda labels, classes: [labels[0], labels[1], labels[2] + classes], "is not a class of output 0, which scores"),
    (lambda labels, classes: [labels[0] - classes, labels[1], labels[2]], "is not a class of output 0"),
    (lambda labels, classes: "cats", "labels must be a 1-D integer tensor"),
])
def test_bad_labels_get_one_line_errors(labels, message):
    program = torch.export.load(QAT)
    batches, good, classes = batches_and_labels(program)
    with pytest.raises(qatfold.QatfoldError) as error:
        qatfold.fold(program, verify=batches, labels=labels(good, classes))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_labels_need_verify():
    program = torch.export.load(QAT)
    with pytest.raises(qatfold.QatfoldError, match="fold: labels needs verify="):
        qatfold.fold(program, labels=torch.zeros(4, dtype=torch.int64))
    with pytest.raises(qatfold.QatfoldError, match="top1 must be True or False"):
        qatfold.fold(program, verify=True, top1="yes")


def test_python_m_qatfold_verify_with_labels(tmp_path):
    original = clipping_program()
    source, folded = tmp_path / "clipping.pt2", tmp_path / "folded.pt2"
    torch.export.save(original, source)
    run_cli("fold", str(source), "-o", str(folded))
    batches, labels, classes = batches_and_labels(original)
    torch.save(batches, tmp_path / "inputs.pt")
    torch.save(torch.cat(labels), tmp_path / "labels.pt")

    def verify(*extra):
        return subprocess.run([sys.executable, "-m", "qatfold", "verify", str(source), str(folded), "--inputs",
                               str(tmp_path / "inputs.pt"), *extra], capture_output=True, text=True, cwd=REPO)

    run = verify("--labels", str(tmp_path / "labels.pt"), "--json")
    assert run.returncode == 3, run.stderr  # the clipping conv is flagged, as without labels
    top1 = json.loads(run.stdout)["top1"]
    agreeing, before, after, samples = counted(original, torch.export.load(folded), batches, labels)
    assert (top1["agreeing"], top1["correct_before"], top1["correct_after"], top1["samples"]) == (
        agreeing, before, after, samples)
    assert top1["accuracy_before"] == before / samples

    text = verify("--top1")
    assert f"({agreeing}/{samples})" in text.stdout and "accuracy" not in text.stdout.split("top-1")[1]

    torch.save(torch.cat(labels)[:-3], tmp_path / "short.pt")
    torch.save(torch.cat(labels) + classes, tmp_path / "classes.pt")
    torch.save(torch.cat(labels).float(), tmp_path / "float.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    for name, message in [("short", "765 label(s) for the 768 samples of 3 batch(es)"), ("classes", "is not a class"),
                          ("float", "must hold integer class indices"), ("junk", "torch.load (weights only)"),
                          ("missing", "no such file")]:
        run = verify("--labels", str(tmp_path / f"{name}.pt"))
        assert run.returncode == 1, (name, run.stderr)
        (line,) = run.stderr.splitlines()
        assert line.startswith(f"qatfold: error: {tmp_path / name}.pt: --labels") and message in line, line
