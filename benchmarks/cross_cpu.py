"""Do the pinned numerics give this CPU's bytes on another CPU? A small target trained by the `target` stage itself,
on this machine and under QEMU's user-mode emulation of other x86-64 CPUs (by default an AMD EPYC and an Intel
Haswell, both AVX2 without AVX-512), with `numerics.mode: portable` and without any pin; prints each run's weights'
SHA-256 and time.

    python benchmarks/cross_cpu.py [--cpus EPYC-Milan-v1 Haswell-v4] [--epochs 3]

Needs QEMU's user-mode emulator (`apt-get install qemu-user`, 7.2 or later for AVX2) and a C compiler (the MKL
shim). Under emulation the CPU that MKL and torch see is the emulated one (its vendor, model and flags, by CPUID),
so MKL takes the code path it takes on that CPU; the arithmetic is the emulated instructions' own. An emulated run
is some hundred times slower than a native one: a few minutes each.
"""
import argparse
import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from unlearning import config, numerics  # noqa: E402

TINY = {"data": {"synthetic": {"train_docs": 2, "validation_docs": 1, "nonmember_docs": 2, "background_docs": 3,
                               "gk_countries": 7, "gk_test_per_subject": 2}},
        "model": {"scratch": {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
                              "num_attention_heads": 2, "vocab_size": 300}, "require": None}}
# the stage as a process that imported torch first runs it: stages/__init__.py then pins nothing
UNPINNED = ("import sys, runpy, torch; sys.argv = ['stages.target', *sys.argv[1:]]; "
            "runpy.run_module('stages.target', run_name='__main__')")


def merged(base: dict, override: dict) -> dict:
    for key, value in override.items():
        base[key] = merged(base.get(key) or {}, value) if isinstance(value, dict) else value
    return base


def write_params(workdir: Path, mode: str, epochs: int) -> None:
    params = merged(config.defaults(), merged(TINY, {"model": {"train": {"epochs": epochs}},
                                                    "numerics": {"mode": mode, "threads": 2}}))
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def train(workdir: Path, cpu: str | None, pinned: bool) -> tuple[str, float]:
    """(the weights' SHA-256, seconds) of one target stage run, emulating `cpu` (None: this machine)."""
    shutil.rmtree(workdir / "models", ignore_errors=True)
    args = ["--data", "data/prepared", "--out", "models/target"]
    python = [sys.executable, "-m", "stages.target", *args] if pinned else [sys.executable, "-c", UNPINNED, *args]
    command = (["qemu-x86_64", "-cpu", cpu] if cpu else []) + python
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    if cpu and pinned:
        # Under emulation /proc/cpuinfo is this machine's, and a process started again would run natively, so the
        # stage cannot find out that it needs the MKL shim: it is preloaded for it, as the stage on that CPU would
        # (on an Intel CPU model the shim changes nothing).
        env["LD_PRELOAD"] = str(numerics.mkl_shim())
    start = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed:\n{result.stderr[-2000:]}")
    weights = (workdir / "models" / "target" / "model.safetensors").read_bytes()
    return hashlib.sha256(weights).hexdigest(), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", nargs="+", default=["EPYC-Milan-v1", "Haswell-v4"],
                        help="QEMU CPU models to emulate (`qemu-x86_64 -cpu help` lists them)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the small target")
    args = parser.parse_args()
    if shutil.which("qemu-x86_64") is None:
        sys.exit("qemu-x86_64 not found: apt-get install qemu-user")
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    print(f"{time.strftime('%Y-%m-%d')}, this machine: {model}; a {TINY['model']['scratch']['num_hidden_layers']}-layer "
          f"target, {args.epochs} epochs, 2 threads")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_params(workdir, "portable", args.epochs)
        env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
        subprocess.run([sys.executable, "-m", "stages.prepare", "--out", "data/prepared"], cwd=workdir, check=True,
                       capture_output=True, env=env)
        rows = []
        for mode, pinned in (("portable", True), ("unpinned", False)):
            write_params(workdir, "portable" if pinned else "native", args.epochs)
            for cpu in [None, *args.cpus]:
                digest, seconds = train(workdir, cpu, pinned)
                rows.append((mode, cpu or "this machine", digest, seconds))
                print(f"  {mode:9s} {cpu or 'this machine':16s} {digest[:16]}  {seconds:7.1f} s", flush=True)
    for mode in ("portable", "unpinned"):
        digests = {digest for m, _, digest, _ in rows if m == mode}
        print(f"{mode}: {'the same weights on every CPU' if len(digests) == 1 else f'{len(digests)} different weights'}")


if __name__ == "__main__":
    main()
