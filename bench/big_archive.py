"""Time and memory of qatfold on a 1 GiB archive, against `cp` + `sync`.

Makes an archive with 1 GiB of weights (four 8192x8192 linear layers,
torch.export.save), then runs, alternating, five times each:
  cp IN OUT && sync OUT          the floor: the kernel copies, the disk syncs
  qatfold fold IN -o OUT         nothing folds: the input is copied as it is
  qatfold roundtrip IN -o OUT    every record rewritten; weights copied by the kernel
  qatfold roundtrip --verify-crc the same, reading every weight byte for its CRC
and prints medians, their ratios to cp + sync, and peak RSS. qatfold syncs
before it renames its output into place (crash safety), so the fair floor
syncs too. Every output is removed before the next run, so no run pays for
deleting the previous one's file.
Usage: .venv/bin/python -m bench.big_archive [--keep DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RSS_TARGET_MIB = 32
RATIO_TARGET = 1.3


def make_big_archive(path: str) -> None:
    """torch.export.save of four bias-free 8192x8192 linear layers: 1 GiB of weights."""
    import torch

    class Big(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Linear(8192, 8192, bias=False) for _ in range(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:
                x = layer(x)
            return x

    with torch.no_grad():
        torch.export.save(torch.export.export(Big().eval(), (torch.randn(1, 8192),)), path)


def peak_rss_of(command: list[str]) -> tuple[float, float]:
    """Runs `command` (stdout discarded) under GNU time and returns (peak RSS
    MiB, seconds). GNU time is a small C program that forks and execs, so the
    peak is the command's own; a child forked from Python would start with
    Python's pages counted."""
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", report.name, *command], check=True,
                       stdout=subprocess.DEVNULL)
        seconds, kib = report.read().split()[-2:]
    return int(kib) / 1024.0, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", help="folder to keep the 1 GiB archive in")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cli = os.environ.get("QATFOLD_CLI", os.path.join(REPO, "build", "qatfold"))
    folder = args.keep or tempfile.mkdtemp(prefix="qatfold-big-", dir=os.path.join(REPO, "build"))
    os.makedirs(folder, exist_ok=True)
    big = os.path.join(folder, "big.pt2")
    out = os.path.join(folder, "out.pt2")
    if not os.path.exists(big):
        # In a child, so torch stays out of this process.
        code = f"from bench import big_archive; big_archive.make_big_archive({big!r})"
        subprocess.check_call([sys.executable, "-c", code], stderr=subprocess.DEVNULL, cwd=REPO)
    commands = {
        "cp + sync": ["/bin/sh", "-c", f"cp '{big}' '{out}' && sync '{out}'"],
        "qatfold fold": [cli, "fold", big, "-o", out],
        "qatfold roundtrip": [cli, "roundtrip", big, "-o", out],
        "roundtrip --verify-crc": [cli, "roundtrip", "--verify-crc", big, "-o", out],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, float] = {name: 0.0 for name in commands}
    for _ in range(args.repeat):
        for name, command in commands.items():
            if os.path.exists(out):
                os.remove(out)
            subprocess.check_call(["sync"])
            peak, seconds = peak_rss_of(command)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak)
    size = os.path.getsize(big)
    floor = statistics.median(times["cp + sync"])
    print(f"archive: {size / 2**30:.2f} GiB; medians of {args.repeat} runs, alternating")
    for name in commands:
        median = statistics.median(times[name])
        print(f"  {name:24s} {median:6.2f} s  {median / floor:5.2f}x cp+sync   peak RSS {peaks[name]:6.1f} MiB")
    fold_ratio = statistics.median(times["qatfold fold"]) / floor
    roundtrip_ratio = statistics.median(times["qatfold roundtrip"]) / floor
    print(f"targets: fold and roundtrip <= {RATIO_TARGET}x cp+sync (fold {fold_ratio:.2f}x, roundtrip "
          f"{roundtrip_ratio:.2f}x); peak RSS < {RSS_TARGET_MIB} MiB")
    if os.path.exists(out):
        os.remove(out)
    if not args.keep:
        os.remove(big)
        os.rmdir(folder)


if __name__ == "__main__":
    main()
