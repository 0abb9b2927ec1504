"""What every PyTorch peer script in the benchmarks does before it loads torch.

Import it first: `sys.path.insert(0, <repo>/scripts); from torch_peer import ALLOCATOR`.
ALLOCATOR says how the allocator was set up, for the script's JSON line.
"""
import ctypes


def keep_freed_memory():
    """Keep freed memory in the process instead of returning it to the kernel.

    glibc serves every allocation above 32 MB (ResNet-50's larger activations at batch 16) with a
    fresh mmap and unmaps it on free, so each step pays page faults on every such tensor: with
    transparent huge pages in `madvise` mode (Debian's default) PyTorch's step takes about twice
    as long, mostly in the kernel. PyTorch users on CPU avoid it with jemalloc, tcmalloc or THP
    `always`; turning glibc's mmap and trimming off is the same fix with nothing to install.
    Returns the transparent-huge-page mode, for the record.
    """
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)):
        raise RuntimeError("mallopt refused to turn glibc's mmap and trimming off")
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "unknown"


ALLOCATOR = f"glibc, mmap and trim off; THP {keep_freed_memory()}"
