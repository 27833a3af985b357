"""Seeding and determinism: one call makes a CPU run bit-for-bit repeatable.

Seeds Python, NumPy and torch (CPU and CUDA), switches on deterministic algorithms, and returns
the ``torch.Generator`` the DataLoader shuffles with plus the flags that were set, so that a run
record can say exactly how it was seeded (AF's ``fix_random_seed`` does the same job).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

# cuBLAS needs this workspace setting for deterministic GEMMs on CUDA >= 10.2.
_CUBLAS_KEY = "CUBLAS_WORKSPACE_CONFIG"


def seed_everything(
    seed: int, deterministic: bool = True, device: str = "cpu"
) -> tuple[torch.Generator, dict]:
    """Seed every RNG and set the determinism flags.

    Args:
        seed: the run seed (python ``random``, NumPy global RNG, torch CPU and CUDA RNGs).
        deterministic: turn on ``torch.use_deterministic_algorithms``. On CPU this makes runs
            bit-for-bit repeatable; on CUDA ops without a deterministic kernel only warn
            (``warn_only``) so that a run never dies on a missing kernel.
        device: "cpu" or "cuda".

    Returns:
        (generator, flags): a CPU ``torch.Generator`` seeded with ``seed`` for the DataLoader,
        and a JSON-able dict of what was set, for the run record.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    cuda = device.startswith("cuda")
    if cuda and torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    warn_only = cuda
    if deterministic and cuda:
        os.environ.setdefault(_CUBLAS_KEY, ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    generator = torch.Generator()
    generator.manual_seed(seed)
    flags = {
        "seed": seed,
        "deterministic_algorithms": deterministic,
        "deterministic_warn_only": warn_only,
        "cudnn_deterministic": deterministic,
        "cudnn_benchmark": not deterministic,
        "cublas_workspace_config": os.environ.get(_CUBLAS_KEY),
        "torch_threads": torch.get_num_threads(),
    }
    return generator, flags


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive python/NumPy seeds from the worker's torch seed.

    torch already gives each worker ``base_seed + worker_id``; NumPy and ``random`` are not
    reseeded by torch, so without this every worker would share their state.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
