#!/usr/bin/env python3
"""Seed corpora and the dictionary for the fuzz targets, from the fixtures.

    python3 fuzz/prepare.py OUT_DIR

writes OUT_DIR/corpus/<target>/ (whole archives for the zip and pipeline
targets, model JSON records for model_json, weights configs for payload),
copies in the committed regression inputs, and writes OUT_DIR/pt2.dict: every
JSON key and every op/target string found in the fixtures' model JSON, plus
the zip signatures. Standard library only, so it runs before any venv exists.
"""
import hashlib
import json
import pathlib
import shutil
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
REGRESSIONS = ROOT / "tests" / "corpus" / "fuzz"
TARGETS = ("zip_reader", "model_json", "payload", "pipeline")
ZIP_TOKENS = [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"PK\x07\x08",
              b"\x01\x00", b"FB", b"\xff\xff\xff\xff"]


def collect_strings(value, keys, strings):
    if isinstance(value, dict):
        for key, item in value.items():
            keys.add(key)
            collect_strings(item, keys, strings)
    elif isinstance(value, list):
        for item in value:
            collect_strings(item, keys, strings)
    elif isinstance(value, str) and len(value) < 64:
        strings.add(value)


def write_seed(directory, data):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main():
    out = pathlib.Path(sys.argv[1])
    corpus = out / "corpus"
    keys, strings = set(), set()
    for archive in sorted(FIXTURES.glob("*.pt2")):
        data = archive.read_bytes()
        write_seed(corpus / "zip_reader", data)
        write_seed(corpus / "pipeline", data)
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                record = zf.read(name)
                if name.endswith("models/model.json"):
                    write_seed(corpus / "model_json", record)
                    collect_strings(json.loads(record), keys, strings)
                elif name.endswith("model_weights_config.json"):
                    write_seed(corpus / "payload", record)
                    collect_strings(json.loads(record), keys, strings)
    regressions = 0
    for target in TARGETS:
        for regression in sorted((REGRESSIONS / target).glob("*")) if (REGRESSIONS / target).is_dir() else []:
            (corpus / target).mkdir(parents=True, exist_ok=True)
            shutil.copy(regression, corpus / target / regression.name)
            regressions += 1
    if regressions == 0:
        sys.exit(f"fuzz: no regression inputs in {REGRESSIONS} (python3 fuzz/make_regressions.py rebuilds them)")
    tokens = [json.dumps(k).encode() for k in sorted(keys)] + [json.dumps(s).encode() for s in sorted(strings)]
    tokens += ZIP_TOKENS
    with open(out / "pt2.dict", "w") as f:
        for token in tokens:
            f.write('"' + "".join(f"\\x{b:02x}" for b in token) + '"\n')
    print(f"fuzz: seeds in {corpus}, {len(tokens)} dictionary tokens in {out / 'pt2.dict'}")


if __name__ == "__main__":
    main()
