"""Bench helpers whose numbers the benchmark ratios rest on."""

import subprocess
import sys

from conftest import ROOT


def test_peak_memory_of_a_bench_part_is_its_own_not_its_parents():
    held = bytearray(800 * 2**20)  # this process (the parent of the part) peaks above 0.8 GiB
    held[:: 4096] = b"x" * len(held[:: 4096])  # touch every page so that it is resident
    code = "import sys; sys.path.insert(0, 'bench'); from common import peak_rss_gib; print(peak_rss_gib())"
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert float(child.stdout.split()[-1]) < 0.5
    del held
