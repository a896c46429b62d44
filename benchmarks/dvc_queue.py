"""Wall time of N experiments through the DVC queue, one worker against N at once, on the default configuration.

python benchmarks/dvc_queue.py [--first-layers 10 13]   (one experiment per first layer)

A clone of this repository's committed HEAD in a temporary folder, its DVC cache filled from this workspace's
(`dvc repro` here first), so `prepare`, `target` and the `@target` evaluations are restored, not rerun. Each
experiment is the headline run on another triple (`-S layers=[N,N+1,N+2]`, with `sweep`, `methods`, `baselines` and
`seeds` empty so that it is that run alone): `unlearn`, its three evaluations and the report. The experiments run
twice: through `dvc queue start -j 1`, then, the run-cache emptied, through `-j N`. Every stage process runs
`numerics.threads` threads whatever the environment (unlearning/numerics.py), so N workers run N times that many; while
they run, the stage processes' OMP_NUM_THREADS is read from /proc to show it.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]
TRIM = ["-S", "sweep=[]", "-S", "methods=[]", "-S", "baselines=[]", "-S", "seeds=[]"]


def run(cmd, cwd, env=None):
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def stage_threads() -> set[str]:
    """OMP_NUM_THREADS of every running `python -m stages.*` process."""
    seen = set()
    for proc in Path("/proc").iterdir():
        try:
            if b"stages." in (proc / "cmdline").read_bytes():
                env = dict(item.split(b"=", 1) for item in (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
                seen.add(env.get(b"OMP_NUM_THREADS", b"unset").decode())
        except (OSError, ValueError):
            continue
    return seen


def through_queue(repo: Path, first_layers: list[int], workers: int) -> tuple[float, set, int]:
    """(wall seconds from `dvc queue start` to the last experiment's end, the stage processes' OMP_NUM_THREADS seen,
    the most experiments seen running at once)."""
    env = dict(os.environ)
    for first in first_layers:
        run([*DVC, "exp", "run", "--queue", "-S", f"layers=[{first},{first + 1},{first + 2}]", *TRIM], repo, env)
    started = time.monotonic()
    with (repo.parent / f"queue-j{workers}.log").open("w") as log:
        subprocess.run([*DVC, "queue", "start", "-j", str(workers)], cwd=repo, env=env, stdout=log, stderr=log,
                       check=True)
    threads_seen, most = set(), 0
    while True:
        status = run([*DVC, "queue", "status"], repo)
        running = len(re.findall(r"\bRunning\b", status))
        most = max(most, running)
        threads_seen |= stage_threads()
        if not running and not re.search(r"\bQueued\b", status):
            break
        time.sleep(1)
    elapsed = time.monotonic() - started
    if len(re.findall(r"\bSuccess\b", status)) != len(first_layers):
        sys.exit(f"dvc_queue.py: not every experiment succeeded:\n{status}")
    run([*DVC, "queue", "remove", "--success"], repo)
    # an idle worker outlives its queue: the next pass's `dvc queue start -j N` would find it and start fewer
    run([*DVC, "queue", "stop"], repo)
    while "0 active, 0 idle" not in run([*DVC, "queue", "status"], repo):
        time.sleep(1)
    return elapsed, threads_seen, most


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-layers", type=int, nargs="+", default=[10, 13])
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    workers = len(args.first_layers)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        run(["git", "clone", "-q", str(ROOT), str(repo)], tmp)
        run([*DVC, "remote", "add", "-d", "workspace", str(ROOT / ".dvc" / "cache")], repo)
        run([*DVC, "pull", "-q"], repo)
        if subprocess.run([*DVC, "status", "-q"], cwd=repo).returncode != 0:
            sys.exit("dvc_queue.py: the clone is not up to date; run `dvc repro` in the workspace and commit dvc.lock")
        one_at_a_time, threads_1, most_1 = through_queue(repo, args.first_layers, 1)
        shutil.rmtree(repo / ".dvc" / "cache" / "runs")
        at_once, threads_n, most_n = through_queue(repo, args.first_layers, workers)
    print(f"{workers} experiments (layers from {args.first_layers}), {cores} cores, `uptime` at the end: "
          f"{os.getloadavg()[0]:.2f}")
    print(f"  dvc queue start -j 1: {one_at_a_time:6.1f} s  (stages ran OMP_NUM_THREADS {sorted(threads_1)}, "
          f"at most {most_1} running)")
    print(f"  dvc queue start -j {workers}: {at_once:6.1f} s  (stages ran OMP_NUM_THREADS {sorted(threads_n)}, "
          f"at most {most_n} running)")
    print(f"  -j {workers} against -j 1: {one_at_a_time / at_once:.2f}x")

if __name__ == "__main__":
    main()
