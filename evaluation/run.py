"""Evaluate a speechllm checkpoint on any dataset the project reads, the IWSLT way, with a reference system beside it.

    python -m evaluation.run --model DIR --data MANIFEST_OR_DATASET --output_dir OUT [--whisper_reference DIR]

ASR rows are scored by WER after Whisper's English normaliser, ST rows by BLEU and chrF (sacrebleu; zh tokeniser for
Chinese) and COMET when `unbabel-comet` and a local wmt22-comet-da checkpoint ($SPEECHLLM_COMET_MODEL) are there,
SQA rows by accuracy (exact or contained match). The metrics are local `evaluate` modules (evaluation/metrics).
`--whisper_reference` transcribes the ASR rows with a Whisper checkpoint's own decoder on the same audio.
Writes OUT/results.json (metrics, real-time factors, every prediction), OUT/results.md (task × language table)
and OUT/results.png.
"""

import argparse
import json
import logging
import os
import sys
import time

import evaluate
import torch
from tqdm.auto import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pipeline_speechllm  # noqa: E402,F401  (registers speech-instruct)
from pipeline_speechllm import task_instruction  # noqa: E402
from processing_speechllm import load_audio  # noqa: E402
from training.data import usable_rows_of_tasks  # noqa: E402

logger = logging.getLogger("speechllm.evaluation")
METRICS_DIR = os.path.join(ROOT, "evaluation", "metrics")
EVALUATED_TASKS = ("asr", "st", "sqa")
PIPELINE_TASK = {"asr": "transcribe", "st": "translate", "sqa": "answer"}


def load_metric(name: str):
    return evaluate.load(os.path.join(METRICS_DIR, name))


def reference_of(row: dict) -> str:
    return {"asr": row["transcript"], "st": row["translation"], "sqa": row["answer"]}[row["task"]]


def group_key(row: dict) -> tuple[str, str]:
    return row["task"], (row["tgt_lang"] or "en") if row["task"] == "st" else "en"


# ---------------------------------------------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------------------------------------------


def run_speechllm(pipe, rows, batch_size: int, max_new_tokens: int) -> tuple[list[str], float]:
    """Our predictions in row order, and the seconds it took."""
    predictions = [""] * len(rows)
    groups = {}
    for index, row in enumerate(rows):
        instruction = task_instruction(PIPELINE_TASK[row["task"]], row["tgt_lang"], row["question"])
        groups.setdefault(instruction, []).append(index)
    started = time.perf_counter()
    with tqdm(total=len(rows), desc="speechllm", unit="clip") as progress:
        for instruction, indices in groups.items():
            indices.sort(key=lambda i: rows[i]["duration"])  # batches of like lengths: little padding, like stopping points
            for start in range(0, len(indices), batch_size):  # one batch at a time, so the bar moves within a group
                batch = indices[start : start + batch_size]
                audios = [rows[i]["audio_source"] for i in batch]
                outputs = pipe(audios, instruction=instruction, batch_size=batch_size, max_new_tokens=max_new_tokens)
                for i, text in zip(batch, outputs):
                    predictions[i] = text
                progress.update(len(batch))
    return predictions, time.perf_counter() - started


def run_whisper(whisper_dir: str, rows, batch_size: int) -> tuple[list[str], float]:
    """Whisper's own encoder-decoder on the same audio (greedy, English, no timestamps)."""
    rate = WhisperTranscriber.SAMPLING_RATE
    started = time.perf_counter()
    transcriber = WhisperTranscriber(whisper_dir)
    predictions = []
    for start in tqdm(range(0, len(rows), batch_size), desc="whisper reference", unit="batch"):
        batch = rows[start : start + batch_size]
        predictions += transcriber([load_audio(row["audio_source"], None, rate) for row in batch])
    return predictions, time.perf_counter() - started


class WhisperTranscriber:
    """A converted Whisper checkpoint's own decoder: 16 kHz clips → texts (greedy, no timestamps)."""

    SAMPLING_RATE = 16000

    def __init__(self, whisper_dir: str):
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

        self.model = WhisperForConditionalGeneration.from_pretrained(whisper_dir).eval()
        self.features = WhisperFeatureExtractor.from_pretrained(whisper_dir)
        self.tokenizer = WhisperTokenizerFast.from_pretrained(whisper_dir)

    def __call__(self, clips: list) -> list[str]:
        inputs = self.features(clips, sampling_rate=self.SAMPLING_RATE, return_tensors="pt")
        with torch.no_grad():
            tokens = self.model.generate(inputs.input_features, max_new_tokens=128)
        return [text.strip() for text in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


# ---------------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------------


def comet_scorer():
    """A COMET scoring function when unbabel-comet and a local checkpoint are there, else (None, why not)."""
    checkpoint = os.environ.get("SPEECHLLM_COMET_MODEL")
    try:
        from comet import load_from_checkpoint
    except ImportError:
        return None, "COMET skipped: unbabel-comet is not installed"
    if not checkpoint or not os.path.exists(checkpoint):
        return None, "COMET skipped: no local wmt22-comet-da checkpoint (set SPEECHLLM_COMET_MODEL to its model.ckpt)"
    model = load_from_checkpoint(checkpoint)

    def score(sources, predictions, references):
        data = [{"src": s, "mt": p, "ref": r} for s, p, r in zip(sources, predictions, references)]
        return float(model.predict(data, batch_size=16, gpus=0).system_score)

    return score, "COMET: wmt22-comet-da (local)"


def score_group(task: str, language: str, rows, predictions, comet) -> dict:
    references = [reference_of(row) for row in rows]
    if task == "asr":
        return load_metric("normalised_wer").compute(predictions=predictions, references=references)
    if task == "sqa":
        return load_metric("sqa_accuracy").compute(predictions=predictions, references=references)
    scores = load_metric("bleu_chrf").compute(predictions=predictions, references=references, language=language)
    if comet is not None:
        scores["comet"] = comet([row["transcript"] or "" for row in rows], predictions, references)
    return scores


def score_system(rows, predictions, comet) -> dict:
    groups = {}
    for row, prediction in zip(rows, predictions):
        groups.setdefault(group_key(row), ([], []))
        groups[group_key(row)][0].append(row)
        groups[group_key(row)][1].append(prediction)
    return {f"{task}/{language}": score_group(task, language, r, p, comet) for (task, language), (r, p) in sorted(groups.items())}


# ---------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------

HEADLINE = {"asr": ("wer", "WER ↓", 100), "st": ("bleu", "BLEU ↑", 1), "sqa": ("accuracy", "accuracy ↑", 100)}


def headline(group: str, scores: dict) -> tuple[str, float]:
    key, label, scale = HEADLINE[group.split("/")[0]]
    return label, scores[key] * scale


def markdown_table(results: dict) -> str:
    systems = list(results["systems"])
    groups = sorted({g for s in systems for g in results["systems"][s]["scores"]})
    lines = ["| task | language | metric | " + " | ".join(systems) + " |", "| --- | --- | --- |" + " ---: |" * len(systems)]
    for group in groups:
        task, language = group.split("/")
        label = HEADLINE[task][1]
        cells = []
        for system in systems:
            scores = results["systems"][system]["scores"].get(group)
            cells.append(f"{headline(group, scores)[1]:.1f}" if scores else "—")
        lines.append(f"| {task.upper()} | {language} | {label} | " + " | ".join(cells) + " |")
    lines.append("| all | | real-time factor ↓ | " + " | ".join(f"{results['systems'][s]['rtf']:.3f}" for s in systems) + " |")
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(results["systems"])
    groups = sorted({g for s in systems for g in results["systems"][s]["scores"]})
    figure, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.4), squeeze=False)
    colours = dict(zip(systems, ["tab:blue", "tab:gray", "tab:orange"]))
    for axis, group in zip(axes[0], groups):
        scored = [(s, results["systems"][s]["scores"][group]) for s in systems if group in results["systems"][s]["scores"]]
        label = headline(group, scored[0][1])[0]
        heights = [headline(group, scores)[1] for _, scores in scored]
        axis.bar([s for s, _ in scored], heights, color=[colours[s] for s, _ in scored])
        axis.set_title(f"{group} ({label})")
        axis.set_ylim(0, max(max(heights), 1.0) * 1.18)
        for x, height in enumerate(heights):
            axis.annotate(f"{height:.1f}", (x, height), ha="center", va="bottom")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def evaluate_model(model_dir, data, output_dir, whisper_reference=None, batch_size=8, max_new_tokens=100, limit=None):
    from transformers import pipeline

    pipe = pipeline("speech-instruct", model=model_dir)
    pipe.model.merge_lora()  # inference only: folded adapters decode ~1.25× faster, same tokens (bench/RESULTS.md)
    rows = usable_rows_of_tasks(data, EVALUATED_TASKS, pipe.processor, "eval", limit)
    if not rows:
        raise ValueError(f"{data} has no usable ASR/ST/SQA rows to evaluate")
    audio_seconds = sum(row["duration"] for row in rows)
    comet, comet_note = comet_scorer()
    predictions, seconds = run_speechllm(pipe, rows, batch_size, max_new_tokens)
    results = {
        "model": model_dir,
        "data": data,
        "rows": len(rows),
        "audio_seconds": audio_seconds,
        "comet": comet_note,
        "systems": {"speechllm": {"scores": score_system(rows, predictions, comet), "rtf": seconds / audio_seconds}},
        "predictions": [{"id": row["id"], "task": row["task"], "reference": reference_of(row), "speechllm": p} for row, p in zip(rows, predictions)],
    }
    if whisper_reference:
        asr_rows = [row for row in rows if row["task"] == "asr"]
        if asr_rows:
            whisper_predictions, whisper_seconds = run_whisper(whisper_reference, asr_rows, batch_size)
            whisper_scores = score_system(asr_rows, whisper_predictions, None)
            whisper_audio = sum(row["duration"] for row in asr_rows)
            results["systems"]["whisper"] = {"scores": whisper_scores, "rtf": whisper_seconds / whisper_audio}
            by_id = dict(zip((row["id"] for row in asr_rows), whisper_predictions))
            for entry in results["predictions"]:
                if entry["id"] in by_id:
                    entry["whisper"] = by_id[entry["id"]]
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2, ensure_ascii=False)
    table = markdown_table(results)
    with open(os.path.join(output_dir, "results.md"), "w") as handle:
        handle.write(table + f"\n{comet_note}\n")
    plot(results, os.path.join(output_dir, "results.png"))
    print(table)
    print(comet_note)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="manifest (.jsonl/.csv/.tsv) or a datasets directory")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--whisper_reference", help="a Whisper checkpoint to transcribe the ASR rows beside ours")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=100)
    parser.add_argument("--limit", type=int, help="evaluate the first N usable rows only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    evaluate_model(args.model, args.data, args.output_dir, args.whisper_reference, args.batch_size, args.max_new_tokens, args.limit)


if __name__ == "__main__":
    main()
