"""Peak memory of `qatfold roundtrip` on an archive with >= 1 GiB of weights.

Builds the archive with real torch.export.save (four 8192x8192 float32
linear layers, 1 GiB), then runs the CLI in a child process and reads its
peak resident set size from the kernel. Prints the figures; exits non-zero
if the peak is 100 MiB or more.

Usage: .venv/bin/python bench/roundtrip_memory.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")

LIMIT_MIB = 100
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_big_archive(path: str) -> int:
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
        model = Big().eval()
        program = torch.export.export(model, (torch.randn(1, 8192),))
        torch.export.save(program, path)
    return sum(t.numel() * t.element_size() for t in program.state_dict.values())


def peak_rss_of(command: list[str]) -> tuple[float, float]:
    """Runs `command` as the only child so far and returns (peak MiB, seconds)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os.execv(command[0], command)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return usage.ru_maxrss / 1024.0, elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", help="folder to keep the archives in")
    args = parser.parse_args()
    cli = os.environ.get("QATFOLD_CLI", os.path.join(REPO, "build", "qatfold"))
    folder = args.keep or tempfile.mkdtemp(prefix="qatfold-bench-")
    os.makedirs(folder, exist_ok=True)
    big = os.path.join(folder, "big.pt2")
    out = os.path.join(folder, "big_roundtrip.pt2")
    if not os.path.exists(big):
        # Build the archive in a child so this process's own memory stays out of the figures.
        code = f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); " \
               f"import roundtrip_memory as b; print(b.make_big_archive({big!r}))"
        weights = int(subprocess.check_output([sys.executable, "-c", code], stderr=subprocess.DEVNULL).split()[-1])
    else:
        weights = os.path.getsize(big)
    size = os.path.getsize(big)
    peak_mib, seconds = peak_rss_of([cli, "roundtrip", big, "-o", out])
    print(f"archive:         {size / 2**30:.2f} GiB ({weights / 2**30:.2f} GiB of weights)")
    print(f"roundtrip:       {seconds:.2f} s, {size / 2**20 / seconds:.0f} MiB/s")
    print(f"peak RSS:        {peak_mib:.1f} MiB (target < {LIMIT_MIB} MiB; ratio to archive size {peak_mib / (size / 2**20):.4f})")
    if not args.keep:
        for path in (big, out):
            os.remove(path)
        os.rmdir(folder)
    if peak_mib >= LIMIT_MIB:
        raise SystemExit(f"peak RSS {peak_mib:.1f} MiB is over the {LIMIT_MIB} MiB target")


if __name__ == "__main__":
    main()
