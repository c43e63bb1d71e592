"""Torch's intra-op CPU thread count, pinned while the forecaster trains and evaluates.

Why it matters for reproducibility: several CPU kernels of a training step sum their work in
per-thread partial results, and how the batch is split between threads depends on the number of
threads (measured with torch 2.13 on the CPU: the weight and bias gradients of the Conv1d (oneDNN),
the attention's input projection (an MKL GEMM over the batch) and the LayerNorm all change in their
last bits between 1 and 2 threads). Floating-point addition is not associative, so the same seed
gives other weights, another temperature and other metrics when the thread count changes. That
count is not a property of the run but of its surroundings: the machine's cores and affinity,
``OMP_NUM_THREADS``, a caller that changed it (the walk-forward trains its forecasters inside
``rl.pipeline.torch_threads``), or, across a resume, the worker an Airflow retry landed on.
Pinning it for the duration of the stage removes all of these.

For a given count the kernels split work statically (OpenMP static schedule, one chunk per thread),
so results do not depend on timing or on the machine's load; with one thread there is no split at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """Torch's intra-op CPU threads set to ``n`` inside the block and restored after.

    ``torch.set_num_threads`` is called even when ``n`` is already the count: it also turns MKL's
    dynamic thread adjustment off, so the block runs the same way whatever the process did before.
    The setting belongs to the calling OS thread (OpenMP), which is the thread that trains.
    """
    if n < 1:
        raise ValueError(f"intra-op threads must be >= 1, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
