"""Several stage processes at once (a `dvc queue start -j N`) each take a GPU of their own: claim_gpu's flocks."""
import subprocess
import sys

from helpers import ROOT

HOLDER = """
import sys
from unlearning.models.gpus import claim_gpu
print(claim_gpu(int(sys.argv[1]), sys.argv[2]), flush=True)
sys.stdin.readline()   # holds its GPU until the test lets it go
"""


def holder(count: int, lock_dir) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(count), str(lock_dir)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    return process, int(process.stdout.readline())


def release(process: subprocess.Popen) -> None:
    process.communicate("\n", timeout=30)


def test_concurrent_processes_get_different_gpus_and_a_freed_gpu_is_taken_again(tmp_path):
    first, gpu_a = holder(3, tmp_path)
    second, gpu_b = holder(3, tmp_path)
    third, gpu_c = holder(3, tmp_path)
    assert [gpu_a, gpu_b, gpu_c] == [0, 1, 2]
    release(second)
    fourth, gpu_d = holder(3, tmp_path)
    assert gpu_d == 1
    # all three held: a fifth shares the first GPU rather than fail
    fifth, gpu_e = holder(3, tmp_path)
    assert gpu_e == 0
    for process in (first, third, fourth, fifth):
        release(process)
    sixth, gpu_f = holder(3, tmp_path)
    assert gpu_f == 0
    release(sixth)
