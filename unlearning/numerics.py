"""Portable numerics: the same bytes from the same inputs on every x86-64 CPU with AVX2, Intel or AMD, whatever its
core count; and the fingerprint every model and evaluation records of what computed it.

A float result depends on the order of its operations, and on a CPU the libraries choose that order by machine:
- torch's own kernels (ATen) are compiled for several vector widths and run at the widest the CPU has; a sum in
  16 lanes (AVX-512) rounds otherwise than one in 8 (AVX2). ATEN_CPU_CAPABILITY=avx2 fixes the width.
- matrix products go to MKL, which picks its code path by CPU model and vendor. MKL_CBWR=AVX2 fixes Intel's AVX2
  path, the same on every Intel CPU with AVX2 (MKL's conditional numerical reproducibility). On any other CPU MKL
  ignores the setting and runs a path of its own, unless it is told that the CPU is an Intel one: its internal
  mkl_serv_intel_cpu_true, replaced by a one-line library loaded first (LD_PRELOAD; built with the C compiler on
  first use, `mkl_shim`). Then an AMD CPU runs Intel's AVX2 path, instruction for instruction. (MKL's only
  reproducible path that it documents for other vendors, COMPATIBLE, is SSE2, far slower: benchmarks/README.md.)
- oneDNN (bfloat16 on a CPU) dispatches by ISA as well: ONEDNN_MAX_CPU_ISA=AVX2.
- the number of threads splits work whose result depends on the split: `numerics.threads`, the same on every
  machine, whatever its cores.
- torch.use_deterministic_algorithms, for what has a nondeterministic implementation (mostly on GPUs).
The libraries read their variables when they load, so `pin` sets them in the environment before torch is imported
(stages/__init__.py, for every stage process), over whatever the caller's environment says; LD_PRELOAD only works
from a process's start, so a process that needs the shim starts again with it, before torch loads. `apply`, after
the import, sets what torch sets at run time and refuses to work if a pin did not take effect (it asks MKL which
path it runs).

`native` leaves every kernel choice to the machine (faster, and the results are the machine's own); the fingerprint
then names the CPU. On a GPU, `portable` turns on deterministic algorithms: the same GPU model with the same software
gives the same bytes, another GPU model or CUDA release does not (docs/reliability.md).
"""
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import PipelineError

MODES = ("portable", "native")
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
MKL_BRANCH, MKL_AVX2 = 1, 10  # mkl_serv_cbwr_get(MKL_CBWR_BRANCH) and its answer for MKL_CBWR_AVX2
# set by `pin` before torch loads, read by `apply` and `fingerprint`: the pins this process runs under
PINNED = "UNLEARNING_NUMERICS"
PORTABLE_CPU = "any x86-64 CPU with AVX2 and FMA"
# the CPU flags that change which kernels run, recorded by native fingerprints
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
             "amx_bf16")
SHIM_SOURCE = "/* MKL takes Intel's code paths on this CPU (unlearning/numerics.py) */\n" \
              "int mkl_serv_intel_cpu_true(void) { return 1; }\n"


def environment(mode: str, threads: int) -> dict[str, str]:
    """The variables `pin` sets: the thread counts in both modes, the kernels' code paths in portable mode."""
    variables = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "OMP_DYNAMIC": "FALSE",
                 "MKL_DYNAMIC": "FALSE"}
    if mode == "portable":
        # cuBLAS's own reproducibility setting, read when CUDA starts (torch.use_deterministic_algorithms needs it)
        variables.update(PORTABLE_KERNELS, CUBLAS_WORKSPACE_CONFIG=":4096:8")
    variables[PINNED] = f"{mode}:{threads}"
    return variables


def cpu_fields() -> dict:
    """The first processor's fields of /proc/cpuinfo (model name, vendor_id, flags), {} where there is none."""
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if key.strip() == "flags":
                    break
    except OSError:
        pass
    return fields


def cpu_vendor() -> str:
    return cpu_fields().get("vendor_id", "unknown")


def mkl_shim() -> Path:
    """The library that tells MKL it runs on an Intel CPU, built once per user with the C compiler ($CC, cc or gcc)
    into the cache folder ($XDG_CACHE_HOME or ~/.cache, unlearning/)."""
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "unlearning"
    library = folder / f"mkl_intel_cpu_{hashlib.sha256(SHIM_SOURCE.encode()).hexdigest()[:8]}.so"
    if library.is_file():
        return library
    compiler = next((found for found in (os.environ.get("CC"), "cc", "gcc") if found and shutil.which(found)), None)
    if compiler is None:
        raise PipelineError(f"numerics: portable numerics on this {cpu_vendor()} CPU need a C compiler to build a "
                            "one-line library for MKL (none of $CC, cc, gcc found); install gcc, or set "
                            "`numerics.mode: native` (its results are this machine's)")
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"{library.stem}.c"
    source.write_text(SHIM_SOURCE, encoding="utf-8")
    partial = library.with_suffix(f".{os.getpid()}.tmp")
    built = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(source)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise PipelineError(f"numerics: {compiler} could not build {library.name} "
                            f"({(built.stderr.strip().splitlines() or ['no message'])[-1]}); install gcc, or set "
                            "`numerics.mode: native`")
    partial.replace(library)
    return library


def pin(mode: str, threads: int, environ=os.environ) -> bool:
    """Set `environment(mode, threads)`, overriding what is there, in native mode removing the kernel pins; before
    torch is imported, or the libraries have already chosen their paths. On a CPU that is not Intel's, portable mode
    adds the MKL shim to LD_PRELOAD; True when it was not there yet, so that the process must start again (os.execv)
    for the dynamic loader to load it."""
    if "torch" in sys.modules:
        raise RuntimeError("numerics.pin after torch was imported: the kernels' code paths are already chosen")
    if mode == "native":
        for name in PORTABLE_KERNELS:
            environ.pop(name, None)
    environ.update(environment(mode, threads))
    if mode != "portable" or platform.machine() != "x86_64" or cpu_vendor() == "GenuineIntel":
        return False
    shim = str(mkl_shim())
    preloaded = environ.get("LD_PRELOAD", "").split()
    if shim in preloaded:
        return False
    environ["LD_PRELOAD"] = " ".join([shim, *preloaded])
    return True


def pin_from_params(path) -> bool:
    """`pin` with params.yaml's `numerics`, for a stage process; True when the process must start again. Anything
    wrong with the file is left to the stage, whose validation names it before any work."""
    import yaml
    try:
        settings = yaml.safe_load(open(path, encoding="utf-8"))["numerics"]
        mode, threads = settings["mode"], settings["threads"]
    except Exception:
        return False
    if mode in MODES and isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        return pin(mode, threads)
    return False


def pinned() -> tuple[str, int] | None:
    """(mode, threads) that `pin` set before torch loaded in this process, or None."""
    value = os.environ.get(PINNED, "")
    mode, _, threads = value.partition(":")
    return (mode, int(threads)) if mode in MODES and threads.isdigit() else None


def mkl_branch() -> int | None:
    """The code path MKL runs (mkl_serv_cbwr_get: 10 is AVX2, 2 AUTO, 1 no pinned path), asked of the MKL inside
    torch; None where torch has no MKL."""
    import ctypes

    import torch
    try:
        library = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        return library.mkl_serv_cbwr_get(MKL_BRANCH)
    except (OSError, AttributeError):
        return None


def apply(settings: dict, device) -> None:
    """After torch is imported, before any work: the thread count, deterministic algorithms in portable mode, and the
    check that the kernel pins took effect. `settings` is params' `numerics`; `device` a torch.device."""
    import torch
    mode, threads = settings["mode"], settings["threads"]
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(mode == "portable", warn_only=device.type != "cpu")
    # deterministic mode also fills every new tensor with NaN, which only shows a kernel that reads memory it did not
    # write; no result depends on it, and it costs a fill per allocation
    torch.utils.deterministic.fill_uninitialized_memory = False
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = mode == "portable"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "native"
    if mode != "portable":
        return
    if platform.machine() not in ("x86_64", "AMD64"):
        raise PipelineError(f"params.yaml: `numerics.mode` portable pins x86-64 kernels and this machine is "
                            f"{platform.machine()}; set `numerics.mode: native` (its results are this machine's)")
    if pinned() is None or pinned()[0] != "portable" or os.environ.get("MKL_CBWR") != PORTABLE_KERNELS["MKL_CBWR"]:
        raise PipelineError("numerics: torch was imported before the portable pins were set; run stages as "
                            "`python -m stages.<name>` (as dvc.yaml does), or call unlearning.numerics.pin first")
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        raise PipelineError(f"params.yaml: `numerics.mode` portable needs {PORTABLE_CPU}; torch runs its "
                            f"{capability} kernels here; set `numerics.mode: native` (its results are this machine's)")
    branch = mkl_branch()
    if branch != MKL_AVX2:
        found = "a torch without MKL" if branch is None else f"MKL on code path {branch}, not AVX2 ({MKL_AVX2})"
        raise PipelineError(f"numerics: portable numerics need MKL's AVX2 path and this {cpu_vendor()} CPU runs "
                            f"{found}; set `numerics.mode: native` (its results are this machine's)")


def _mkl_version() -> str | None:
    import torch
    match = re.search(r"Math Kernel Library Version ([\w.]+)", torch.__config__.show())
    return match.group(1) if match else None


def _cpu_model() -> dict:
    """The CPU's model name, vendor and the flags of ISA_FLAGS it has (from /proc/cpuinfo on Linux)."""
    fields = cpu_fields()
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
    portable = (mode == "portable" and torch.backends.cpu.get_cpu_capability() == "AVX2"
                and mkl_branch() == MKL_AVX2)
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
    """One line for a person: 'portable (AVX2 kernels, MKL AVX2, 2 threads), cpu float32, torch 2.13.0+cpu,
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
