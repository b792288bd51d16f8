"""Is one system's WER better than another's on the same clips, or within resampling noise? A paired bootstrap.

    python -m evaluation.paired_bootstrap outputs/eval-a/results.json:speechllm outputs/eval-b/results.json:speechllm
    python -m evaluation.paired_bootstrap outputs/probe-a/probe.json:ctc outputs/probe-b/probe.json:ctc

Each side is a results.json of evaluation.run or a probe.json of evaluation.probe_mapper, with the name of the system
(or reading) to score after a colon. The clips both files scored (their ASR rows, matched by id) are resampled with
replacement, the same draw for both systems, and each resample's WER (Whisper's normaliser, as evaluation.run scores)
compared: the 95 % interval of B − A, and the share of resamples in which B is lower. An interval that holds 0 says
the two differ by no more than which clips happened to be picked.
"""

import argparse
import json
import sys

import jiwer
import numpy as np

from evaluation.metrics.normalised_wer.normalised_wer import NORMALISER


def read_system(spec: str) -> dict[str, tuple[str, str]]:
    """FILE:SYSTEM → {row id: (reference, prediction)} over the file's ASR rows."""
    path, _, system = spec.rpartition(":")
    if not path:
        raise ValueError(f"{spec!r}: write FILE:SYSTEM, e.g. outputs/eval/results.json:speechllm")
    with open(path) as handle:
        saved = json.load(handle)
    if "predictions" not in saved:
        raise ValueError(f"{path} has no \"predictions\": give a results.json of evaluation.run or a probe.json of evaluation.probe_mapper")
    rows = [row for row in saved["predictions"] if row.get("task", "asr") == "asr"]
    named = sorted({key for row in rows for key in row} - {"id", "task", "reference"})
    if not any(system in row for row in rows):
        raise ValueError(f"{path} has no predictions of {system!r}; its systems: {', '.join(named) or 'none'}")
    return {row["id"]: (row["reference"], row[system]) for row in rows if system in row}


def word_errors(reference: str, prediction: str) -> tuple[int, int]:
    """(edit operations, reference words) of one clip after normalisation; an empty reference counts no words."""
    reference, prediction = NORMALISER(reference), NORMALISER(prediction)
    if not reference.strip():
        return 0, 0
    output = jiwer.process_words(reference, prediction)
    return output.substitutions + output.deletions + output.insertions, len(reference.split())


def paired_bootstrap(a: dict, b: dict, resamples: int = 2000, seed: int = 0) -> dict:
    ids = sorted(set(a) & set(b))
    if not ids:
        raise ValueError("the two files share no ASR row id: they were not scored on the same clips")
    if any(a[i][0] != b[i][0] for i in ids):
        raise ValueError("the same row ids carry different references: the files scored different data")
    counts = np.array([[*word_errors(*a[i]), *word_errors(*b[i])] for i in ids])  # errors A, words, errors B, words
    if not counts[:, 1].any():
        raise ValueError("every shared reference is empty after normalisation: no words to score")
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    words = counts[draws, 1].sum(1)
    wer_a, wer_b = counts[draws, 0].sum(1) / words, counts[draws, 2].sum(1) / words
    low, high = np.percentile(wer_b - wer_a, [2.5, 97.5])
    return {
        "clips": len(ids),
        "reference_words": int(counts[:, 1].sum()),
        "wer_a": float(counts[:, 0].sum() / counts[:, 1].sum()),
        "wer_b": float(counts[:, 2].sum() / counts[:, 1].sum()),
        "difference_interval_95": [float(low), float(high)],
        "share_b_lower": float((wer_b < wer_a).mean()),
        "resamples": resamples,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="FILE:SYSTEM, the baseline")
    parser.add_argument("b", help="FILE:SYSTEM, the system compared with it")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = paired_bootstrap(read_system(args.a), read_system(args.b), args.resamples, args.seed)
    except (OSError, ValueError) as error:
        sys.exit(f"paired_bootstrap: {error}")
    low, high = result["difference_interval_95"]
    print(f"{result['clips']} clips, {result['reference_words']} words: A {100 * result['wer_a']:.1f} % WER, "
          f"B {100 * result['wer_b']:.1f} %; B - A {100 * (result['wer_b'] - result['wer_a']):+.1f} points, 95 % interval "
          f"[{100 * low:+.1f}, {100 * high:+.1f}]; B lower in {100 * result['share_b_lower']:.0f} % of {result['resamples']} resamples")
    return result


if __name__ == "__main__":
    main()
