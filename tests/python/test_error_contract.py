"""One error contract for every Python front end: a wrong argument raises
QatfoldError (never AttributeError, torch's AssertionError or a traceback)
whose message names the argument and what it expected; `python -m qatfold`
prints one line and exits 1 (2 for usage). Signatures show every option."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import qatfold
from support.repo import FIXTURES, REPO

MODEL = FIXTURES / "qat_cadence_cnn.pt2"  # takes x: float32[2, 3, 16, 16]


@pytest.fixture(scope="module")
def program():
    return torch.export.load(MODEL)


def good_batch():
    return (torch.randn(2, 3, 16, 16),)


# (case id, call(program), what the message must contain: the argument and what it expected)
CASES = [
    ("module", lambda ep: qatfold.fold(ep.module()),
     ["program must be a torch.export.ExportedProgram", "not its .module()"]),
    ("nn-module", lambda ep: qatfold.fold(torch.nn.Conv2d(1, 1, 1)),
     ["program must be a torch.export.ExportedProgram, not a Conv2d", "torch.export.export"]),
    ("path", lambda ep: qatfold.fold("x.pt2"),
     ["program must be a torch.export.ExportedProgram, not a str", "torch.export.load"]),
    ("path-object", lambda ep: qatfold.fold(Path("x.pt2")), ["not a PosixPath", "torch.export.load"]),
    ("none", lambda ep: qatfold.fold(None), ["program must be a torch.export.ExportedProgram, not a NoneType"]),
    ("calibrate-empty", lambda ep: qatfold.fold(ep, calibrate=[]), ["calibrate: no inputs given", "tuple of tensors"]),
    ("calibrate-string", lambda ep: qatfold.fold(ep, calibrate="inputs.pt"),
     ["calibrate must be a tuple of tensors", "not 'inputs.pt'"]),
    ("calibrate-shape", lambda ep: qatfold.fold(ep, calibrate=(torch.randn(1, 3, 16, 16),)),
     ["calibrate: batch 0, input 0 ('x') has shape [1, 3, 16, 16]", "the program takes [2, 3, 16, 16]"]),
    ("calibrate-rank", lambda ep: qatfold.fold(ep, calibrate=[(torch.randn(2, 3, 16),)]),
     ["calibrate: batch 0, input 0 ('x') has shape [2, 3, 16]", "takes [2, 3, 16, 16]"]),
    ("calibrate-dtype", lambda ep: qatfold.fold(ep, calibrate=(torch.zeros(2, 3, 16, 16, dtype=torch.int64),)),
     ["calibrate: batch 0, input 0 ('x') has dtype torch.int64", "takes torch.float32"]),
    ("calibrate-count", lambda ep: qatfold.fold(ep, calibrate=[good_batch() * 2]),
     ["calibrate: batch 0 has 2 tensor(s)", "takes 1 input(s) (x)"]),
    ("calibrate-element", lambda ep: qatfold.fold(ep, calibrate=("a",)),
     ["calibrate: batch 0, input 0 ('x') must be a tensor, not a str"]),
    ("calibrate-batch-type", lambda ep: qatfold.fold(ep, calibrate=[good_batch(), 3]),
     ["calibrate: batch 1 must be a tuple of tensors, not an int"]),
    ("verify-string", lambda ep: qatfold.fold(ep, verify="yes"), ["verify must be a tuple of tensors", "not 'yes'"]),
    ("verify-empty", lambda ep: qatfold.fold(ep, verify=[]), ["verify: no inputs given"]),
    ("verify-shape", lambda ep: qatfold.fold(ep, verify=(torch.randn(1, 3, 16, 16),)),
     ["verify: batch 0, input 0 ('x') has shape [1, 3, 16, 16]"]),
    ("verify-number", lambda ep: qatfold.fold(ep, verify=3), ["verify must be a tuple of tensors", "not an int"]),
    ("eps-bool", lambda ep: qatfold.fold(ep, eps_tolerance=True), ["eps_tolerance must be a number", "not a bool"]),
    ("eps-string", lambda ep: qatfold.fold(ep, eps_tolerance="0.1"), ["eps_tolerance must be a number", "not a str"]),
    ("eps-range", lambda ep: qatfold.fold(ep, eps_tolerance=2.0),
     ["fold: eps_tolerance must be a number in [0, 1], not 2.0"]),
    ("eps-nan", lambda ep: qatfold.fold(ep, eps_tolerance=float("nan")), ["eps_tolerance must be a number", "not nan"]),
    ("choice-value", lambda ep: qatfold.fold(ep, per_tensor_weights="raise"),
     ["per_tensor_weights must be one of 'refuse', 'requantize', not 'raise'"]),
    ("choice-type", lambda ep: qatfold.fold(ep, output_range=1), ["output_range must be one of", "not an int"]),
    ("explain-type", lambda ep: qatfold.fold(ep, explain="yes"), ["explain must be True or False, not a str"]),
    ("pass-module", lambda ep: qatfold.FuseQATConvBN(ep.module()),
     ["FuseQATConvBN: program must be a torch.export.ExportedProgram"]),
    ("pass-calibrate", lambda ep: qatfold.FuseQATConvBN(ep, calibrate=[]), ["calibrate: no inputs given"]),
    ("pass-option", lambda ep: qatfold.FuseQATConvBN(ep, risk_threshold="high"),
     ["risk_threshold must be a number", "not a str"]),
    ("inspect-module", lambda ep: qatfold.inspect(ep.module()),
     ["inspect: program must be a torch.export.ExportedProgram"]),
]


@pytest.mark.parametrize("call,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_wrong_arguments_raise_qatfold_error_naming_argument_and_expectation(program, call, expected):
    with pytest.raises(qatfold.QatfoldError) as raised:
        call(program)
    message = str(raised.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, message


def test_unknown_keywords_are_type_errors_as_for_any_python_function(program):
    with pytest.raises(TypeError, match="no_such_option"):
        qatfold.fold(program, no_such_option=1)


def test_a_dynamic_size_outside_the_programs_range_names_the_batch_and_the_range():
    class Tiny(torch.nn.Module):
        def forward(self, x):
            return x * 2

    batch = torch.export.Dim("batch", min=2, max=4)
    ep = torch.export.export(Tiny(), (torch.randn(3, 5),), dynamic_shapes=({0: batch},))
    with pytest.raises(qatfold.QatfoldError, match=r"^calibrate: batch 1, input 0 \('x'\) has shape \[9, 5\]; "
                                                   r"the program takes \[2\.\.4, 5\]$"):
        qatfold.fold(ep, calibrate=[(torch.randn(3, 5),), (torch.randn(9, 5),)])
    unbounded = torch.export.export(Tiny(), (torch.randn(3, 5),), dynamic_shapes=({0: torch.export.Dim("n")},))
    with pytest.raises(qatfold.QatfoldError, match=r"the program takes \[0\.\., 5\]$"):
        qatfold.fold(unbounded, verify=(torch.randn(3, 6),))
    assert qatfold.fold(unbounded, verify=(torch.randn(7, 5),)).verification.batches == 1


def test_calibration_no_fold_used_is_said(program):
    result = qatfold.fold(program, calibrate=good_batch())
    note = "calibrate: no fold used the calibration inputs"
    assert any(n.startswith(note) for n in result.report.notes) and note in result.report.text


def test_verify_text_says_the_marks_are_the_estimate_only_when_there_are_marks(program):
    marked = qatfold.fold(program, verify=good_batch(), risk_threshold=0.0)
    assert marked.report.text.count("may clip") >= 2  # the marks, and the sentence about them
    unmarked = qatfold.fold(program, verify=good_batch(), risk_threshold=1e9)
    assert "may clip" not in unmarked.report.text


def test_import_registers_what_torch_export_load_needs():
    code = f"import qatfold, torch; print(len(list(torch.export.load({str(MODEL)!r}).graph.nodes)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and int(result.stdout) > 10, result.stderr[-2000:]
    without = subprocess.run([sys.executable, "-c", code.replace("import qatfold, torch", "import torch")],
                             capture_output=True, text=True)
    assert without.returncode != 0 and "quantized_decomposed" in without.stderr  # what qatfold's import fixes


# Signatures from the one options table.
def test_every_option_is_a_named_keyword_with_type_and_default():
    for function in (qatfold.fold, qatfold.FuseQATConvBN, qatfold.in_cadence_compile):
        parameters = inspect.signature(function).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values()), function
        for name, row in qatfold._api.FOLD_OPTIONS.items():
            parameter = parameters[name]
            assert parameter.kind is parameter.KEYWORD_ONLY
            if row["kind"] == "float":
                assert parameter.annotation == "float" and parameter.default == float(row["default"])
            elif row["kind"] == "flag":
                assert parameter.annotation == "bool" and parameter.default is (row["default"] == "true")
            else:
                assert parameter.default == row["default"] in row["choices"]
                assert parameter.annotation == "Literal[" + ", ".join(map(repr, row["choices"])) + "]"
        assert "calibrate" in parameters and "verify" in parameters


def test_the_typing_stub_is_generated_from_the_table_and_agrees_with_the_runtime():
    from qatfold._signatures import render_stub

    stub_path = Path(qatfold.__file__).parent / "_api.pyi"
    committed = (REPO / "python" / "qatfold" / "_api.pyi").read_text()
    assert committed == render_stub(), "run `make stubs`"
    assert stub_path.read_text() == committed  # installed with the package
    assert (Path(qatfold.__file__).parent / "py.typed").exists()
    functions = {node.name: node for node in ast.walk(ast.parse(committed)) if isinstance(node, ast.FunctionDef)}
    for name, runtime in (("fold", qatfold.fold), ("in_cadence_compile", qatfold.in_cadence_compile),
                          ("__init__", qatfold.FuseQATConvBN.__init__)):
        stub = functions[name].args
        names = [a.arg for a in stub.posonlyargs + stub.args + stub.kwonlyargs]
        assert names == list(inspect.signature(runtime).parameters), name
        defaults = [ast.literal_eval(d) for d in stub.kw_defaults]
        assert defaults == [p.default for p in inspect.signature(runtime).parameters.values()
                            if p.kind is p.KEYWORD_ONLY], name


def test_qatfold_error_is_documented():
    assert "names the argument" in qatfold.QatfoldError.__doc__
    assert issubclass(qatfold.QatfoldError, ValueError)


# `python -m qatfold`: one line and exit 1 for bad files and inputs, 2 for usage.
def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qatfold", *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("module-cli")
    (d / "not-a-zip.pt2").write_text("garbage")
    (d / "not-torch.pt").write_text("not a torch file")
    torch.save(good_batch(), d / "inputs.pt")
    torch.save((torch.randn(1, 3, 16, 16),), d / "short.pt")
    return d


MODULE_CASES = [
    ("verify-not-zip", lambda d: ("verify", d / "not-a-zip.pt2", MODEL), "not-a-zip.pt2: not a zip archive"),
    ("verify-missing", lambda d: ("verify", MODEL, d / "missing.pt2"), "missing.pt2: no such file"),
    ("verify-unrelated", lambda d: ("verify", MODEL, FIXTURES / "float_cnn.pt2"),
     "float_cnn.pt2: takes other inputs than"),
    ("verify-inputs-not-torch", lambda d: ("verify", MODEL, MODEL, "--inputs", d / "not-torch.pt"),
     "not-torch.pt: --inputs: torch.load (weights only) cannot read it"),
    ("verify-inputs-shape", lambda d: ("verify", MODEL, MODEL, "--inputs", d / "short.pt"),
     "short.pt: --inputs: batch 0, input 0 ('x') has shape [1, 3, 16, 16]; the program takes [2, 3, 16, 16]"),
    ("fold-not-zip", lambda d: ("fold", d / "not-a-zip.pt2", "-o", d / "o.pt2", "--calibrate", d / "inputs.pt"),
     "not-a-zip.pt2: not a zip archive"),
    ("fold-calibrate-shape", lambda d: ("fold", MODEL, "-o", d / "o.pt2", "--calibrate", d / "short.pt"),
     "short.pt: calibrate: batch 0, input 0 ('x') has shape [1, 3, 16, 16]"),
    ("fold-output-dir", lambda d: ("fold", MODEL, "-o", d, "--calibrate", d / "inputs.pt"), "is a directory"),
]


@pytest.mark.parametrize("arguments,expected", [c[1:] for c in MODULE_CASES], ids=[c[0] for c in MODULE_CASES])
def test_module_commands_print_one_line_and_exit_1(files, arguments, expected):
    result = run_module(*arguments(files))
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.startswith("qatfold: error: ") and result.stderr.count("\n") == 1, result.stderr[-3000:]
    assert expected in result.stderr
    assert not (files / "o.pt2").exists()


def test_module_usage_errors_exit_2(files):
    result = run_module("fold", MODEL, "-o", files / "o.pt2", "--calibrate", files / "inputs.pt",
                        "--quantized-bn", "nope")
    assert result.returncode == 2 and "invalid choice: 'nope'" in result.stderr
    assert run_module("fold", MODEL, "-o", files / "o.pt2", "--calibrate", files / "inputs.pt",
                      "--eps-tolerance", "high").returncode == 2


def test_module_fold_prints_only_its_report_and_writes_like_the_command_line(files):
    out = files / "folded.pt2"
    out.write_bytes(b"old")
    out.chmod(0o600)
    result = run_module("fold", MODEL, "-o", out, "--calibrate", files / "inputs.pt")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""  # no library warnings before or after the report
    assert result.stdout.startswith("chains found 2, folded 2")
    assert out.stat().st_mode & 0o777 == 0o600
    assert not any("batch_norm" in str(n.target) for n in torch.export.load(out).graph.nodes)
