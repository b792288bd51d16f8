"""Long jobs take `--threads N` (or OMP_NUM_THREADS) and say how many threads they use in their first line."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = ("import sys, torch; from training.threads import use_threads; "
         "use_threads(int(sys.argv[1]) if sys.argv[1] != '-' else None, 'job'); print(torch.get_num_threads())")


def run_probe(requested: str, omp: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp is not None:
        env["OMP_NUM_THREADS"] = omp
    result = subprocess.run([sys.executable, "-c", PROBE, requested], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stdout.strip().splitlines()


@pytest.mark.parametrize("requested, omp, expected, source", [("1", None, 1, "--threads"), ("-", "1", 1, "OMP_NUM_THREADS"),
                                                              ("2", "1", 2, "--threads")])
def test_threads_are_set_and_said_first(requested, omp, expected, source):
    first, threads = run_probe(requested, omp)
    assert first.startswith(f"job: using {expected} CPU thread") and f"({source})" in first
    assert int(threads) == expected


def test_without_either_every_core_is_used():
    first, threads = run_probe("-", None)
    assert int(threads) == os.cpu_count() and "(every core)" in first


@pytest.mark.parametrize("module", [["train.py"], ["-m", "evaluation.run"], ["-m", "synthesis.build_dataset"]])
def test_the_long_jobs_take_threads(module):
    result = subprocess.run([sys.executable, *module, "--help"] if module != ["train.py"] else
                            [sys.executable, "train.py", "--stage", "mapper", "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--threads" in result.stdout
