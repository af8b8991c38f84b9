#!/usr/bin/env python3
"""Rebuilds the fuzz regression inputs: one input per past reader fix, made
from a committed fixture with the defect that fix was for.

    python3 fuzz/make_regressions.py

writes tests/corpus/fuzz/<target>/<name> (the inputs `fuzz/run.sh` replays
before each campaign, and tests/python/test_fuzz_regressions.py runs through
the command line). Each row names the commit of the fix. Standard library
only, like fuzz/prepare.py.
"""
from __future__ import annotations

import json
import pathlib
import struct
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = ROOT / "tests" / "corpus" / "fuzz"
STORED = FIXTURES / "tied_weights.pt2"           # 11 KiB, every record stored
DEFLATED = FIXTURES / "tied_weights_deflated.pt2"  # the same, every record deflated
MODEL = "tied_weights/models/model.json"
CONFIG = "tied_weights/data/weights/model_weights_config.json"


def record(path: pathlib.Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def model_text() -> str:
    return record(STORED, MODEL).decode()


def model_with(edit) -> bytes:
    model = json.loads(model_text())
    edit(model)
    return json.dumps(model).encode()


def config_with(edit) -> bytes:
    config = json.loads(record(STORED, CONFIG))
    edit(config)
    return json.dumps(config).encode()


def renamed(old: str, new: str) -> bytes:
    """The stored archive with a record renamed in its local and central
    headers (same length, so every offset stays)."""
    assert len(old) == len(new)
    data = STORED.read_bytes()
    assert data.count(old.encode()) == 2, old
    return data.replace(old.encode(), new.encode())


def end_records_disagree() -> bytes:
    """The end of central directory record's directory offset one less than
    the zip64 end record's."""
    data = bytearray(STORED.read_bytes())
    eocd = data.rfind(b"PK\x05\x06")
    assert data.rfind(b"PK\x06\x06") >= 0, "the fixture has a zip64 end record"
    offset = struct.unpack_from("<I", data, eocd + 16)[0]
    struct.pack_into("<I", data, eocd + 16, offset - 1)
    return bytes(data)


def zip_bomb() -> bytes:
    """The deflated model JSON declaring 5000 times its compressed size."""
    data = bytearray(DEFLATED.read_bytes())
    with zipfile.ZipFile(DEFLATED) as archive:
        info = archive.getinfo(MODEL)
    directory = data.rfind(b"PK\x05\x06")
    central = struct.unpack_from("<I", data, directory + 16)[0]
    while data[central:central + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, central + 28)
        name = bytes(data[central + 46:central + 46 + name_length]).decode()
        if name == MODEL:
            struct.pack_into("<I", data, central + 24, info.compress_size * 5000)
            return bytes(data)
        central += 46 + name_length + extra_length + comment_length
    raise AssertionError("model JSON not in the central directory")


def first_node(model: dict) -> dict:
    return model["graph_module"]["graph"]["nodes"][0]


def first_weight(config: dict) -> dict:
    return next(iter(config["config"].values()))


# (target, name, the fix's commit, what the input is, builder)
REGRESSIONS = [
    ("zip_reader", "record-name-parent-directory", "7e92a6e", "a record named with '..'",
     lambda: renamed("tied_weights/archive_version", "tied_weights/../hive_version")),
    ("zip_reader", "record-name-control-character", "7e92a6e", "a record name with a control character",
     lambda: renamed("tied_weights/archive_version", "tied_weights/archive\x01version")),
    ("zip_reader", "record-directory-entry", "7e92a6e", "a record name ending in '/'",
     lambda: renamed("tied_weights/byteorder", "tied_weights/byteorde/")),
    ("zip_reader", "end-records-disagree", "7e92a6e", "end and zip64 end records disagreeing on the directory",
     end_records_disagree),
    ("zip_reader", "zip-bomb-ratio", "7e92a6e", "a record declaring 5000x its compressed size", zip_bomb),
    ("model_json", "unknown-argument-kind", "7e92a6e", "an argument of a kind the schema has not",
     lambda: model_with(lambda m: first_node(m)["inputs"][0].update(arg={"as_mystery": 1}))),
    ("model_json", "scalar-argument-is-list", "7e92a6e", "an as_float argument holding a list",
     lambda: model_with(lambda m: first_node(m)["inputs"][0].update(arg={"as_float": []}))),
    ("model_json", "tensor-value-without-meta", "7e92a6e", "a tensor value with a null meta",
     lambda: model_with(lambda m: m["graph_module"]["graph"]["tensor_values"].update(
         {next(iter(m["graph_module"]["graph"]["tensor_values"])): None}))),
    ("model_json", "invalid-escape-in-kept-metadata", "28a4c45", "an invalid escape in metadata kept as a slice",
     lambda: model_text().replace('"metadata": {', '"metadata": {"bad": "\\q", ', 1).encode()),
    ("model_json", "lone-surrogate-in-unknown-member", "28a4c45", "a lone surrogate in a member the reader skips",
     lambda: model_text().replace("{", '{"extra": "\\ud800", ', 1).encode()),
    ("model_json", "trailing-comma", "28a4c45", "a trailing comma in an array",
     lambda: model_text().replace("[", "[1,", 1).replace("]", ",]", 1).encode()),
    ("model_json", "nested-600-deep", "4d6e525", "arrays nested deeper than the depth limit",
     lambda: model_text().replace("{", '{"deep": ' + "[" * 600 + "]" * 600 + ", ", 1).encode()),
    ("model_json", "invalid-escape-in-parsed-key", "2982c31", "an invalid escape in a key of a node the reader parses",
     lambda: model_text().replace('"target"', '"tar\\get"', 1).encode()),
    ("model_json", "null-tensor-meta-literal", "47118ae", "a tensor_meta that is the literal null",
     lambda: model_text().replace('"tensor_values": {', '"tensor_values": {"ghost": null, ', 1).encode()),
    ("payload", "element-count-overflows", "7e92a6e", "a weight whose sizes multiply past 2^63",
     lambda: config_with(lambda c: [size.update(as_int=1 << 40) for size in first_weight(c)["tensor_meta"]["sizes"]])),
    ("payload", "stride-overflows", "7e92a6e", "a weight with a stride of 2^62",
     lambda: config_with(lambda c: first_weight(c)["tensor_meta"]["strides"][0].update(as_int=1 << 62))),
    ("payload", "storage-offset-negative", "7e92a6e", "a weight with a negative storage offset",
     lambda: config_with(lambda c: first_weight(c)["tensor_meta"]["storage_offset"].update(as_int=-4))),
]


def main() -> None:
    for target, name, _, _, build in REGRESSIONS:
        path = OUT / target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build())
    print(f"fuzz: {len(REGRESSIONS)} regression inputs in {OUT}")


if __name__ == "__main__":
    main()
