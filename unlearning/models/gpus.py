"""Which GPU a stage process takes when the machine has several (loading.resolve_device); no torch here, so that the
claim can be tested in processes that start in milliseconds."""
import fcntl
import os
import tempfile
from pathlib import Path

GPU_LOCKS = "UNLEARNING_GPU_LOCKS"   # the folder of the GPU claims (default: a per-user one in the temp folder)
_claimed_gpu = []   # the open lock file of this process's GPU: closing it, or exiting, frees the GPU


def claim_gpu(count: int, lock_dir: Path | None = None) -> int:
    """The lowest of `count` GPUs that no other process holds, held by an exclusive flock until this process exits;
    0 when every one is held. It gives each of the experiments that `dvc queue start -j N` runs at once (or any N
    stages started by hand) its own GPU: DVC's queue workers share one environment, so CUDA_VISIBLE_DEVICES cannot
    differ between them. The device index never changes a result, so it is no param."""
    if _claimed_gpu:
        return _claimed_gpu[0][0]
    lock_dir = Path(lock_dir or os.environ.get(GPU_LOCKS)
                    or Path(tempfile.gettempdir()) / f"unlearning-gpus-{os.getuid()}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        lock = open(lock_dir / f"gpu{index}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _claimed_gpu.append((index, lock))
        return index
    return 0
