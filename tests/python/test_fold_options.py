"""One table of fold options and passes (passes/fold_options.h, registry.h)
drives the command line, the Python keywords, `qatfold passes` and the
README: these tests hold every consumer to it."""

from __future__ import annotations

import inspect
import re

import pytest
import torch

import qatfold
from qatfold import _core
from support.repo import FIXTURES, REPO, run_cli


def table() -> list[dict[str, str]]:
    return _core.fold_options()


def cli_fold_flags() -> set[str]:
    """The options with a default that `qatfold fold --help` lists (--max-risk, the
    command's own exit-code check, has none)."""
    help_text = run_cli("fold", "--help").stdout
    flags = set(re.findall(r"^\s+(--[a-z-]+) (?:FLOAT|\{[a-z,]+\})=", help_text, flags=re.MULTILINE))
    # The table's flags (on or off) take no value and show no default.
    flag_rows = {row["cli_flag"] for row in table() if row["kind"] == "flag"}
    flags |= {flag for flag in re.findall(r"^\s+(--[a-z-]+)\s", help_text, flags=re.MULTILINE) if flag in flag_rows}
    return flags


def test_cli_flags_are_the_table():
    assert cli_fold_flags() == {row["cli_flag"] for row in table()}


def test_cli_defaults_and_help_come_from_the_table():
    help_text = run_cli("fold", "--help").stdout
    for row in table():
        assert f"{row['cli_flag']} " in help_text
        if row["kind"] == "flag":
            assert row["default"] == "false"  # a flag is off unless given
        else:
            assert f"={row['default']}" in help_text
        assert row["help"][:40] in " ".join(help_text.split())


def test_python_keywords_are_the_table():
    assert set(qatfold._api.FOLD_OPTIONS) == {row["python_name"] for row in table()}
    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    # Every option is accepted by both entry points, with the type and
    # default its signature shows (the table's default, typed).
    parameters = inspect.signature(qatfold.fold).parameters
    defaults = {row["python_name"]: parameters[row["python_name"]].default for row in table()}
    assert {name: str(value) for name, value in defaults.items() if isinstance(value, str)} == \
        {row["python_name"]: row["default"] for row in table() if row["kind"] == "choice"}
    assert qatfold.fold(program, **defaults).report.folded_count == 2
    qatfold.FuseQATConvBN(program, **defaults)
    with pytest.raises(TypeError, match="unexpected keyword argument.*risk_treshold"):
        qatfold.fold(program, risk_treshold=0.2)
    with pytest.raises(TypeError, match="risk_treshold"):
        qatfold.FuseQATConvBN(program, risk_treshold=0.2)
    for row in table():
        assert row["python_name"] in qatfold.fold.__doc__ and row["cli_flag"] in qatfold.fold.__doc__


def test_both_front_ends_refuse_the_same_values():
    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    for name, flag, bad in [("eps_tolerance", "--eps-tolerance", "2"), ("bias_preparation", "--bias-prep", "some"),
                            ("risk_threshold", "--risk-threshold", "-1"),
                            ("output_range", "--output-range", "wide")]:
        with pytest.raises(qatfold.QatfoldError, match=name):
            qatfold.fold(program, **{name: bad})
        result = run_cli("fold", str(FIXTURES / "qat_cadence_cnn.pt2"), "--dry-run", flag, bad, check=False)
        assert result.returncode == 2 and name in result.stderr, result.stderr


def test_option_values_reach_the_fold_from_either_front_end():
    program = torch.export.load(FIXTURES / "qat_cadence_cnn.pt2")
    assert qatfold.fold(program, risk_threshold=0.0).report.flagged_count == 2
    with pytest.raises(qatfold.QatfoldError, match="risk_threshold must be a number .*, not a str"):
        qatfold.fold(program, risk_threshold="0")  # a number option takes a number, as its signature says
    import json

    report = json.loads(run_cli("fold", str(FIXTURES / "qat_cadence_cnn.pt2"), "--dry-run", "--json",
                                "--risk-threshold", "0").stdout)
    assert report["flagged_count"] == 2


def test_passes_listing_and_readme_show_the_table():
    listing = run_cli("passes").stdout
    assert listing == _core.describe_passes()
    for row in table():
        assert f"{row['cli_flag']} / {row['python_name']}" in listing
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- qatfold passes -->\n```\n(.*?)```\n", readme, flags=re.DOTALL)
    assert block, "README lacks the `qatfold passes` block"
    assert block.group(1) == listing, "README's pass list differs from `qatfold passes`; paste its output"


def test_refusal_codes_come_from_the_core_table():
    """qatfold.REFUSAL_CODES is the C++ table: unique ids (the table's rows,
    counted before the dict keyed by id could merge two), and every option a
    refusal names is a keyword of fold(), with a value among its choices
    where it names one."""
    rows = qatfold._core.refusal_codes()
    assert len(rows) >= 40
    assert len({row["code"] for row in rows}) == len(rows) == len(qatfold.REFUSAL_CODES)
    assert "eps-mismatch-per-tensor" in qatfold.REFUSAL_CODES
    for row in rows:
        assert row["message"]
        assert "--" not in row["message"], "the core names no CLI flag"
        if row["option"]:
            option = qatfold._api.FOLD_OPTIONS[row["option"]]
            if option["kind"] == "choice":
                assert row["option_value"] in option["choices"], row
            else:
                assert row["option_value"] == "", row
        else:
            assert row["option_value"] == "", row

