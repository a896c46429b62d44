"""Portable numerics: the same bytes from the same inputs on every x86-64 CPU with AVX2, Intel or AMD, whatever its
core count; and the fingerprint every model and evaluation records of what computed it.

A float result depends on the order of its operations, and on a CPU the libraries choose that order by machine:
- torch's own kernels (ATen) are compiled for several vector widths and run at the widest the CPU has; a sum in
  16 lanes (AVX-512) rounds otherwise than one in 8 (AVX2). ATEN_CPU_CAPABILITY=avx2 fixes the width.
- matrix products go to MKL, which picks its code path by CPU model and vendor, and runs on an AMD CPU a path that no
  Intel CPU runs. Of its reproducible paths (MKL_CBWR) only COMPATIBLE is offered on non-Intel CPUs, so it is the
  one that gives an Intel and an AMD CPU the same products (docs/reliability.md has the measurements).
- oneDNN (bfloat16 on a CPU) dispatches by ISA as well: ONEDNN_MAX_CPU_ISA=AVX2.
- the number of threads splits work whose result depends on the split: `numerics.threads`, the same on every
  machine (one thread gives other bits than two or more).
- torch.use_deterministic_algorithms, for what has a nondeterministic implementation (mostly on GPUs).
The libraries read their variables when they load, so `pin` sets them in the environment before torch is imported
(stages/__init__.py, for every stage process), over whatever the caller's environment says; `apply`, after the
import, sets what torch sets at run time and refuses to work if the pins did not take effect.

`native` leaves every kernel choice to the machine (faster, and the results are the machine's own); the fingerprint
then names the CPU. On a GPU, `portable` turns on deterministic algorithms: the same GPU model with the same software
gives the same bytes, another GPU model or CUDA release does not (docs/reliability.md).
"""
import hashlib
import json
import os
import platform
import re
import sys

from .errors import PipelineError

MODES = ("portable", "native")
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# set by `pin` before torch loads, read by `apply` and `fingerprint`: the pins this process runs under
PINNED = "UNLEARNING_NUMERICS"
PORTABLE_CPU = "any x86-64 CPU with AVX2 and FMA"
# the CPU flags that change which kernels run, recorded by native fingerprints
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
             "amx_bf16")


def environment(mode: str, threads: int) -> dict[str, str]:
    """The variables `pin` sets: the thread counts in both modes, the kernels' code paths in portable mode."""
    variables = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_DYNAMIC": "FALSE",
                 "MKL_DYNAMIC": "FALSE"}
    if mode == "portable":
        # cuBLAS's own reproducibility setting, read when CUDA starts (torch.use_deterministic_algorithms needs it)
        variables.update(PORTABLE_KERNELS, CUBLAS_WORKSPACE_CONFIG=":4096:8")
    variables[PINNED] = f"{mode}:{threads}"
    return variables


def pin(mode: str, threads: int, environ=os.environ) -> None:
    """Set `environment(mode, threads)`, overriding what is there, in native mode removing the kernel pins; before
    torch is imported, or the libraries have already chosen their paths."""
    if "torch" in sys.modules:
        raise RuntimeError("numerics.pin after torch was imported: the kernels' code paths are already chosen")
    if mode == "native":
        for name in PORTABLE_KERNELS:
            environ.pop(name, None)
    environ.update(environment(mode, threads))


def pin_from_params(path) -> None:
    """`pin` with params.yaml's `numerics`, for a stage process. Anything wrong with the file is left to the stage,
    whose validation names it before any work."""
    import yaml
    try:
        settings = yaml.safe_load(open(path, encoding="utf-8"))["numerics"]
        mode, threads = settings["mode"], settings["threads"]
    except Exception:
        return
    if mode in MODES and isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        pin(mode, threads)


def pinned() -> tuple[str, int] | None:
    """(mode, threads) that `pin` set before torch loaded in this process, or None."""
    value = os.environ.get(PINNED, "")
    mode, _, threads = value.partition(":")
    return (mode, int(threads)) if mode in MODES and threads.isdigit() else None


def apply(settings: dict, device) -> None:
    """After torch is imported, before any work: the thread count, deterministic algorithms in portable mode, and the
    check that the kernel pins took effect. `settings` is params' `numerics`; `device` a torch.device."""
    import torch
    mode, threads = settings["mode"], settings["threads"]
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(mode == "portable", warn_only=device.type != "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = mode == "portable"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "native"
    if mode != "portable":
        return
    if platform.machine() not in ("x86_64", "AMD64"):
        raise PipelineError(f"params.yaml: `numerics.mode` portable pins x86-64 kernels and this machine is "
                            f"{platform.machine()}; set `numerics.mode: native` (its results are this machine's)")
    if pinned() is None or pinned()[0] != "portable" or os.environ.get("MKL_CBWR") != "COMPATIBLE":
        raise PipelineError("numerics: torch was imported before the portable pins were set; run stages as "
                            "`python -m stages.<name>` (as dvc.yaml does), or call unlearning.numerics.pin first")
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        raise PipelineError(f"params.yaml: `numerics.mode` portable needs {PORTABLE_CPU}; torch runs its "
                            f"{capability} kernels here; set `numerics.mode: native` (its results are this machine's)")


def _mkl_version() -> str | None:
    import torch
    match = re.search(r"Math Kernel Library Version ([\w.]+)", torch.__config__.show())
    return match.group(1) if match else None


def _cpu_model() -> dict:
    """The CPU's model name, vendor and the flags of ISA_FLAGS it has (from /proc/cpuinfo on Linux)."""
    fields = {}
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
            if key.strip() == "flags":
                break
    except OSError:
        pass
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", platform.processor() or platform.machine()),
            "vendor": fields.get("vendor_id", "unknown"), "flags": [flag for flag in ISA_FLAGS if flag in flags]}


def fingerprint(device, dtype) -> dict:
    """What computed a result, measured in this process: the numerics in effect, the kernels' code paths, the thread
    count, the device and dtype, the library versions, and, where the bytes depend on it, the CPU or GPU. Under
    portable numerics on a CPU the CPU is not named: any AVX2 CPU gives the same bytes (docs/reliability.md)."""
    import tokenizers
    import torch
    import transformers
    mode = (pinned() or ("native", None))[0]
    portable = (mode == "portable" and os.environ.get("MKL_CBWR") == "COMPATIBLE"
                and torch.backends.cpu.get_cpu_capability() == "AVX2")
    record = {
        "numerics": "portable" if portable else "native",
        "threads": torch.get_num_threads(),
        "kernels": {"aten": torch.backends.cpu.get_cpu_capability(),
                    "mkl": os.environ.get("MKL_CBWR", "by CPU"),
                    "onednn": os.environ.get("ONEDNN_MAX_CPU_ISA", "by CPU"),
                    "deterministic": torch.are_deterministic_algorithms_enabled()},
        "device": device.type,
        "dtype": str(dtype).removeprefix("torch."),
        "cpu": PORTABLE_CPU if portable else _cpu_model(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "mkl": _mkl_version()},
    }
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        record["gpu"] = {"name": torch.cuda.get_device_name(index),
                         "capability": ".".join(map(str, torch.cuda.get_device_capability(index))),
                         "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    return record


# ---- records: what each output directory keeps in fingerprint.json -------------------------------------------------

FILE = "fingerprint.json"


def record(computed: dict, target_sha256: str, role: str, model: dict | None = None) -> dict:
    """fingerprint.json of an output: its role (target, unlearned, evaluation, attack), how it was computed, the
    target it comes from and, for an evaluation, the record of the model it scored."""
    entry = {"role": role, "target_sha256": target_sha256, "computed": computed}
    if model is not None:
        entry["model"] = model
    return entry


def short_id(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]


def identity(entries: list[dict]) -> dict:
    """What two results must share to be compared: the target's hash, and the fingerprints of the evaluations that
    made them and of the unlearning of the model they score (none for the target, which its hash identifies however
    it was trained); `numerics` is a short id over both."""
    def distinct(records):
        found = []
        for computed in records:
            if computed not in found:
                found.append(computed)
        return found

    targets = sorted({entry["target_sha256"] for entry in entries})
    evaluation = distinct(entry["computed"] for entry in entries)
    unlearning = distinct(entry["model"]["computed"] for entry in entries
                          if (entry.get("model") or {}).get("role") == "unlearned")
    return {"target": " and ".join(targets), "numerics": short_id(distinct(evaluation + unlearning)),
            "evaluation": evaluation, "unlearning": unlearning}


def describe(computed: dict) -> str:
    """One line for a person: 'portable (AVX2 kernels, MKL COMPATIBLE, 2 threads), cpu float32, torch 2.13.0+cpu,
    transformers 5.25.0'."""
    kernels, versions = computed["kernels"], computed["versions"]
    where = computed["device"] + (f" {computed['gpu']['name']}" if "gpu" in computed else "")
    if computed["numerics"] == "native" and computed["device"] == "cpu":
        where += f" {computed['cpu']['model']}"
    return (f"{computed['numerics']} ({kernels['aten']} kernels, MKL {kernels['mkl']}, {computed['threads']} threads), "
            f"{where} {computed['dtype']}, torch {versions['torch']}, transformers {versions['transformers']}")


def _flat(value, prefix=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flat(inner, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), value


def differences(a: dict | None, b: dict | None) -> list[str]:
    """Why two results (their `identity`) cannot be compared, one phrase each; [] when they can."""
    if a is None or b is None:
        return ["no fingerprint (made before results recorded one)"]
    reasons = []
    if a["target"] != b["target"]:
        reasons.append(f"another target ({a['target'][:12]}… vs {b['target'][:12]}…)")
    for part in ("evaluation", "unlearning"):
        if a[part] != b[part] and (part == "evaluation" or (a[part] and b[part])):
            flat_a = dict(kv for computed in a[part] for kv in _flat(computed))
            flat_b = dict(kv for computed in b[part] for kv in _flat(computed))
            changed = [f"{key} {flat_a.get(key)} vs {flat_b.get(key)}" for key in sorted(set(flat_a) | set(flat_b))
                       if flat_a.get(key) != flat_b.get(key)]
            reasons.append(f"{part} under other numerics (" + ("; ".join(changed) if changed else
                           "one of them mixes several settings") + ")")
    return reasons
