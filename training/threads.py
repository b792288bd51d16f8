"""How many CPU threads a long job uses, said in its first line.

Two jobs on a 2-core machine that each take every core slow each other ~6× (a training step of 6 s became 40 s beside
an evaluation): PyTorch's and the BLAS libraries' thread pools fight for the same cores. `--threads N` (or
OMP_NUM_THREADS) gives each job its share: `--threads 1` for an evaluation beside a training run.
"""

import os


def add_threads_argument(parser):
    parser.add_argument("--threads", type=int, help="CPU threads to use (default: OMP_NUM_THREADS, else every core); "
                                                    "give each of two jobs beside each other one share")


def use_threads(requested: int | None, job: str) -> int:
    """Set PyTorch's and the BLAS pools' thread counts to `requested`, else OMP_NUM_THREADS, else every core, and
    print how many as the job's first line (on the main process of a launched run)."""
    import torch
    from threadpoolctl import threadpool_limits

    cores = os.cpu_count() or 1
    environment = os.environ.get("OMP_NUM_THREADS", "")
    count = requested or (int(environment) if environment.isdigit() and int(environment) > 0 else cores)
    if count < 1:
        raise SystemExit(f"{job}: --threads must be at least 1 (got {count})")
    torch.set_num_threads(count)
    threadpool_limits(count)
    os.environ["OMP_NUM_THREADS"] = str(count)  # worker processes (data loading, launched ranks) take the same share
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        source = "--threads" if requested else ("OMP_NUM_THREADS" if environment else "every core")
        print(f"{job}: using {count} CPU thread{'s' if count > 1 else ''} of {cores} cores ({source})", flush=True)
    return count
