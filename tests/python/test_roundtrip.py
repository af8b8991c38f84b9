"""qatfold roundtrip: the output is the same program, bit for bit."""

from __future__ import annotations

import struct
import zipfile

import pytest
import torch

from support.graph_compare import assert_same_graph, assert_same_tensors, random_inputs
from support.repo import run_cli


def test_roundtrip_is_the_same_program(fixture_path, tmp_path):
    out = tmp_path / "out.pt2"
    run_cli("roundtrip", str(fixture_path), "-o", str(out))
    original = torch.export.load(fixture_path)
    written = torch.export.load(out)
    assert_same_graph(original, written)
    assert_same_tensors(original.state_dict, written.state_dict)
    assert_same_tensors(original.constants, written.constants)
    assert original.graph_signature == written.graph_signature
    for seed in range(3):
        x = random_inputs(original, seed)
        assert torch.equal(original.module()(*x), written.module()(*x))


def test_roundtrip_keeps_records_byte_identical_and_aligned(fixture_path, tmp_path):
    out = tmp_path / "out.pt2"
    run_cli("roundtrip", str(fixture_path), "-o", str(out))
    with zipfile.ZipFile(fixture_path) as a, zipfile.ZipFile(out) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            assert a.read(name) == b.read(name), name
        raw = out.read_bytes()
        for info in b.infolist():
            # Records rebuilt from the graph (model JSON, payload configs) are
            # written stored; every other record keeps its compression.
            rebuilt = info.filename.endswith(".json") and ("/models/" in info.filename or "_config" in info.filename)
            if rebuilt:
                assert info.compress_type == zipfile.ZIP_STORED
            else:
                assert info.compress_type == a.getinfo(info.filename).compress_type
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename
            assert not info.filename.endswith("/")


def test_roundtrip_output_is_deterministic(tmp_path):
    from support.repo import FIXTURES

    first, second = tmp_path / "a.pt2", tmp_path / "b.pt2"
    run_cli("roundtrip", str(FIXTURES / "qat_cadence_cnn.pt2"), "-o", str(first))
    run_cli("roundtrip", str(FIXTURES / "qat_cadence_cnn.pt2"), "-o", str(second))
    assert first.read_bytes() == second.read_bytes()


def test_text_then_assemble_gives_the_same_program(fixture_path, tmp_path):
    """`inspect --text --all-data | assemble`: an archive torch.export.load
    opens whose outputs are the original's, bit for bit, and whose text is
    the text it was assembled from."""
    text = tmp_path / "graph.txt"
    text.write_text(run_cli("inspect", "--text", "--all-data", str(fixture_path)).stdout)
    out = tmp_path / "assembled.pt2"
    run_cli("assemble", str(text), "-o", str(out))
    assert run_cli("inspect", "--text", "--all-data", str(out)).stdout == text.read_text()
    original = torch.export.load(fixture_path)
    assembled = torch.export.load(out)
    assert_same_tensors(original.state_dict, assembled.state_dict, ordered=False)
    assert_same_tensors(original.constants, assembled.constants)
    assert original.graph_signature.user_inputs == assembled.graph_signature.user_inputs
    for seed in range(3):
        x = random_inputs(original, seed)
        assert torch.equal(original.module()(*x), assembled.module()(*x))


def test_assembled_dynamic_program_keeps_its_symbolic_sizes(tmp_path):
    from support.repo import FIXTURES

    source = FIXTURES / "qat_cadence_dynamic.pt2"
    text = tmp_path / "graph.txt"
    text.write_text(run_cli("inspect", "--text", "--all-data", str(source)).stdout)
    assert "symbol s53 = [16, 512]" in text.read_text()
    out = tmp_path / "assembled.pt2"
    run_cli("assemble", str(text), "-o", str(out))
    original, assembled = torch.export.load(source), torch.export.load(out)
    (x,) = original.example_inputs[0]
    for batch, length in [(1, 16), (3, 64), (5, 512)]:
        other = torch.randn(batch, x.shape[1], length, generator=torch.Generator().manual_seed(batch))
        assert torch.equal(original.module()(other), assembled.module()(other))
    with pytest.raises(Exception, match=r"shape\[2\] to be >= 16"):
        assembled.module()(torch.randn(1, x.shape[1], 8))
