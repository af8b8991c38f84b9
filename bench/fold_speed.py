"""Speed of qatfold against ExecuTorch's FuseQATConvBN on a 50-chain QAT model.

Builds a QAT program with 50 conv+BN chains through the real Cadence flow
(prepare_qat_pt2e, a training step, convert_pt2e, torch.export), saves it,
and times, each as the median of several runs:
  (a) the reference pass on an in-memory ExportedProgram
  (b) qatfold.FuseQATConvBN on the same (the FX front door, C++ core)
  (c) the reference file to file: torch.export.load + pass + torch.export.save
  (d) the `qatfold fold` command, file to file
  (e) `cp` of the archive, and (f) `qatfold passes`, the process floor
and prints the ratios. Then it folds the wide programs (Wide, 50 and 400
parallel chains, built once under build/bench-programs/) and prints how the
time per MiB of model JSON and the peak RSS (GNU time) grow with the model:
the core should cost in proportion to the JSON, and hold a small multiple
of it. Last, the in-memory path on the wide programs against ExecuTorch's
pass, part by part. Usage: .venv/bin/python -m bench.fold_speed [--chains N] [--wide 50 400]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import typing
import warnings
import zipfile

import torch
import typing_extensions

warnings.filterwarnings("ignore")
if not hasattr(typing, "override"):
    typing.override = typing_extensions.override
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Deep(torch.nn.Module):
    def __init__(self, chains: int) -> None:
        super().__init__()
        layers = []
        for i in range(chains):
            layers += [torch.nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1, bias=i % 2 == 1), torch.nn.BatchNorm2d(8)]
            # A ReLU after every block, the last too: ExecuTorch's pass leaves a program
            # whose output is a folded batch_norm unsavable (its signature still names it).
            layers.append(torch.nn.ReLU())
        self.body = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Wide(torch.nn.Module):
    """`chains` parallel conv-BN-ReLU blocks over one input, summed: a wide
    program whose model JSON grows linearly with the chains, and whose QAT
    training stays finite at hundreds of chains (a deep stack does not)."""

    def __init__(self, chains: int) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=i % 2 == 1), torch.nn.BatchNorm2d(8),
                                torch.nn.ReLU())
            for i in range(chains))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks[0](x)
        for block in self.blocks[1:]:
            out = out + block(x)
        return out


def median_seconds(run, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        setup = run()
        start = time.perf_counter()
        setup()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model_json_bytes(archive: str) -> int:
    with zipfile.ZipFile(archive) as z:
        return next(i.file_size for i in z.infolist() if i.filename.endswith("models/model.json"))


def fold_peak_rss_mib(cli: str, archive: str, output: str) -> float:
    """Peak RSS of one `qatfold fold`, from GNU time (the median of three)."""
    peaks = []
    for _ in range(3):
        run = subprocess.run(["/usr/bin/time", "-f", "%M", cli, "fold", archive, "-o", output],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
        peaks.append(int(run.stderr.strip().splitlines()[-1]) / 1024)
    return statistics.median(peaks)


def wide_programs(cli: str, chains_list: list[int], repeat: int, folder: str) -> None:
    from bench.json_readers import program_archive

    print("\nwide programs: time and memory against the model JSON")
    rows = []
    for chains in chains_list:
        archive = program_archive(chains)
        output = os.path.join(folder, f"wide{chains}-folded.pt2")
        seconds = median_seconds(lambda a=archive, o=output: lambda: subprocess.run([cli, "fold", a, "-o", o],
                                                                                      check=True,
                                                               stdout=subprocess.DEVNULL), repeat)
        mib = model_json_bytes(archive) / 2**20
        peak = fold_peak_rss_mib(cli, archive, output)
        rows.append((chains, mib, seconds, peak))
        print(f"  {chains:4d} chains: model.json {mib:6.2f} MiB, fold {seconds * 1000:7.1f} ms "
              f"({seconds * 1000 / mib:5.2f} ms/MiB), peak RSS {peak:6.1f} MiB = {peak / mib:4.2f}x the JSON")
    if len(rows) >= 2:
        (c0, mib0, s0, _), (c1, mib1, s1, _) = rows[0], rows[-1]
        print(f"  time per MiB at {c1} chains / at {c0} chains: {(s1 / mib1) / (s0 / mib0):.2f}x "
              f"(JSON grows {mib1 / mib0:.1f}x)")


def in_memory_front_door(chains_list: list[int], repeat: int) -> None:
    """ExecuTorch's pass against qatfold's in memory on the wide programs: the
    ratios #13 asks for, with each part of ours timed (recompile() is what
    every FX pass pays once)."""
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN as ReferencePass

    import qatfold
    from bench.json_readers import program_archive
    from qatfold import _fx

    print("\nin memory (an ExportedProgram, no files), wide programs:")
    own = {}
    for chains in chains_list:
        archive = program_archive(chains)

        def timed(run_on, archive=archive) -> float:
            def prepare():
                program = torch.export.load(archive)
                return lambda: run_on(program)
            return median_seconds(prepare, repeat)

        reference = timed(lambda p: ReferencePass(p)(p.graph_module))
        fuse = timed(lambda p: qatfold.FuseQATConvBN(p)(p.graph_module))
        fold = timed(lambda p: qatfold.fold(p))
        recompile = timed(lambda p: p.graph_module.recompile())
        parts = {"describe": [], "core": [], "replay": []}
        for _ in range(repeat):
            program = torch.export.load(archive)
            with _fx.collector_paused():  # as fold_in_place runs
                t0 = time.perf_counter()
                described = _fx.describe(program)
                t1 = time.perf_counter()
                edits, _, _ = described.fold({}, False)
                del described
                t2 = time.perf_counter()
                replayer = _fx._Replayer(program)
                program.graph_module.recompile = lambda: None  # timed on its own above
                replayer.replay(edits)
                t3 = time.perf_counter()
            for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[name].append(seconds)
        copies = []
        for _ in range(repeat):
            program = torch.export.load(archive)
            t0 = time.perf_counter()
            _fx.copy_program(program, compile=False)
            copies.append(time.perf_counter() - t0)
        copy = statistics.median(copies)
        split = ", ".join(f"{name} {statistics.median(v) * 1000:.1f}" for name, v in parts.items())
        # Our part, from the parts measured directly (not fuse - recompile:
        # two medians of noisy runs).
        own[chains] = sum(statistics.median(v) for v in parts.values())
        print(f"  {chains:4d} chains: ExecuTorch's pass {reference * 1000:8.1f} ms; qatfold.FuseQATConvBN "
              f"{fuse * 1000:7.1f} ms = {reference / fuse:5.1f}x faster ({split}, "
              f"recompile {recompile * 1000:.1f} ms); "
              f"qatfold.fold {fold * 1000:7.1f} ms = FuseQATConvBN + {(fold - fuse) * 1000:.1f} ms "
              f"(a graph copy alone: {copy * 1000:.1f} ms)")
    if len(own) >= 2:
        (c0, s0), (c1, s1) = sorted(own.items())[0], sorted(own.items())[-1]
        print(f"  our part (all but recompile) per chain at {c1} chains / at {c0}: {(s1 / c1) / (s0 / c0):.2f}x")


_GROWTH = """
import gc, resource, sys, typing, warnings
import typing_extensions
warnings.filterwarnings("ignore")
typing.override = getattr(typing, "override", typing_extensions.override)
import torch, torchao.quantization.pt2e.quantize_pt2e
import qatfold

def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

program = torch.export.load(sys.argv[1])
run = (lambda: qatfold.fold(program)) if sys.argv[2] == "fold" else program.graph_module.recompile
collect_each = sys.argv[4] == "collect"
def step():
    run()
    if collect_each:
        gc.collect()
step()
gc.collect()
before = rss_mib()
for _ in range(int(sys.argv[3])):
    step()
gc.collect()
print(rss_mib() - before)
"""


def memory_growth(chains: int, times: int, runs: int = 3) -> None:
    """#13's memory check: RSS growth over `times` folds in one process
    against as many bare recompile() calls (torch caches the source of
    every recompiled module), each in a fresh process, the median of `runs`.
    Measured twice: as the issue states it, and with a full collection after
    every step. The folds' results are garbage in cycles (an FX graph is one),
    which CPython frees only at its next full collection; the second figure
    is what stays once they are freed."""
    from bench.json_readers import program_archive

    archive = program_archive(chains)
    for mode in ("as is", "collect"):
        growth = {}
        for step in ("recompile", "fold"):
            samples = []
            for _ in range(runs):
                done = subprocess.run([sys.executable, "-c", _GROWTH, archive, step, str(times), mode], check=True,
                                      capture_output=True, text=True)
                samples.append(float(done.stdout.strip().splitlines()[-1]))
            growth[step] = statistics.median(samples)
        label = "" if mode == "as is" else ", a full collection after each"
        print(f"\nmemory, {chains} chains{label}: RSS grows {growth['fold']:.1f} MiB over {times} qatfold.fold "
              f"calls, {growth['recompile']:.1f} MiB over {times} bare recompile() calls: "
              f"{growth['fold'] - growth['recompile']:+.1f} MiB (at most +10; median of {runs})")


def main() -> None:
    import torch.ao.quantization.fx._decomposed  # noqa: F401
    from executorch.backends.cadence.aot.quantizer.passes.fuse_ops import FuseQATConvBN as ReferencePass

    import qatfold
    from zoo.flows import export_qat_cadence

    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--wide", type=int, nargs="*", default=[50, 400])
    args = parser.parse_args()
    cli = os.environ.get("QATFOLD_CLI", os.path.join(REPO, "build", "qatfold"))

    folder = tempfile.mkdtemp(prefix="qatfold-speed-")
    path = os.path.join(folder, "deep.pt2")
    torch.manual_seed(0)
    torch.export.save(export_qat_cadence(Deep(args.chains), (torch.randn(1, 3, 16, 16),)), path)
    chains = sum("batch_norm" in str(n.target) for n in torch.export.load(path).graph.nodes)
    print(f"program: {chains} conv+BN chains, archive {os.path.getsize(path) / 1024:.0f} KiB")

    def in_memory(pass_class):
        def prepare():
            program = torch.export.load(path)
            return lambda: pass_class(program)(program.graph_module)
        return prepare

    def reference_file_to_file():
        def run():
            program = torch.export.load(path)
            ReferencePass(program)(program.graph_module)
            torch.export.save(program, os.path.join(folder, "reference.pt2"))
        return run

    def command():
        return lambda: subprocess.run([cli, "fold", path, "-o", os.path.join(folder, "qatfold.pt2")],
                                      check=True, stdout=subprocess.DEVNULL)

    def copy():
        return lambda: subprocess.run(["cp", path, os.path.join(folder, "copy.pt2")], check=True)

    def process_floor():
        return lambda: subprocess.run([cli, "passes"], check=True, stdout=subprocess.DEVNULL)

    a = median_seconds(in_memory(ReferencePass), args.repeat)
    b = median_seconds(in_memory(qatfold.FuseQATConvBN), args.repeat)
    c = median_seconds(reference_file_to_file, args.repeat)
    d = median_seconds(command, args.repeat)
    e = median_seconds(copy, args.repeat)
    f = median_seconds(process_floor, args.repeat)
    print(f"(a) reference pass, in memory:          {a * 1000:8.1f} ms")
    print(f"(b) qatfold.FuseQATConvBN, in memory:   {b * 1000:8.1f} ms   a/b = {a / b:.2f}x")
    print(f"(c) reference, load + pass + save:      {c * 1000:8.1f} ms")
    print(f"(d) qatfold fold command, file to file: {d * 1000:8.1f} ms   c/d = {c / d:.1f}x")
    print(f"(e) cp of the archive:                  {e * 1000:8.1f} ms   d/e = {d / e:.1f}x")
    print(f"(f) qatfold passes (process floor):     {f * 1000:8.1f} ms")
    reference = torch.export.load(os.path.join(folder, "reference.pt2"))
    ours = torch.export.load(os.path.join(folder, "qatfold.pt2"))
    x = torch.randn(1, 3, 16, 16)
    print(f"outputs identical: {torch.equal(reference.module()(x), ours.module()(x))}")
    wide_programs(cli, args.wide, max(args.repeat, 7), folder)
    in_memory_front_door(args.wide, 3)
    memory_growth(min(args.wide), 100)


if __name__ == "__main__":
    main()
