"""Evaluate a speechllm checkpoint on any dataset the project reads, the IWSLT way, with a reference system beside it.

    python -m evaluation.run --model DIR --data MANIFEST_OR_DATASET [MORE ...] --output_dir OUT [--whisper_reference DIR]

ASR rows are scored by WER after Whisper's English normaliser, ST rows by BLEU and chrF (sacrebleu; zh tokeniser for
Chinese), the share of outputs in the requested language (langid, evaluation/language_id.py) and COMET when
`unbabel-comet` and a local wmt22-comet-da checkpoint ($SPEECHLLM_COMET_MODEL) are there, SQA rows by accuracy (exact
or contained match) per question type (a manifest's `question_type`: extractive, generated, unanswerable) and pooled.
The metrics are local `evaluate` modules (evaluation/metrics). Beside our model:
  --whisper_reference DIR   a Whisper checkpoint's own decoder transcribes the ASR rows on the same audio;
  --text_ceiling            the same LLM given the TRUE transcript instead of the audio (ST and SQA rows): what the
                            speech side could at best reach;
  --rtf_batch_sizes 1 8     real-time factors of transcribing the first --rtf_clips ASR clips at each batch size;
  --translate_to de it zh   also translate every ASR clip into these languages and report the share of outputs in
                            each (no reference needed: real recordings have none).
  --per_task 40             a seeded sample of 40 rows of each task: a CPU-sized run, the same rows for every model.
Several manifests are scored pooled (row ids prefixed by each file's name).
The LoRA weights are merged first (inference only). Writes OUT/results.json (metrics, real-time factors, every
prediction), OUT/results.md (task × subset table) and OUT/results.png.
"""

import argparse
import hashlib
import json
import logging
import os
import random
import time

import evaluate
import torch
from tqdm.auto import tqdm

import pipeline_speechllm  # noqa: F401 (registers speech-instruct)
from evaluation.language_id import adherence
from evaluation.prediction_log import PredictionLog
from pipeline_speechllm import task_instruction
from processing_speechllm import load_audio
from training.checkpoints import model_fingerprint
from training.data import usable_rows_of_tasks
from training.model_card import keep_results, record_results
from training.sources import DataError, parse_source
from training.threads import add_threads_argument, use_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

logger = logging.getLogger("speechllm.evaluation")
METRICS_DIR = os.path.join(ROOT, "evaluation", "metrics")
EVALUATED_TASKS = ("asr", "st", "sqa")
PIPELINE_TASK = {"asr": "transcribe", "st": "translate", "sqa": "answer"}


def load_metric(name: str):
    return evaluate.load(os.path.join(METRICS_DIR, name))


def reference_of(row: dict) -> str:
    return {"asr": row["transcript"], "st": row["translation"], "sqa": row["answer"]}[row["task"]]


def group_keys(row: dict) -> list[tuple[str, str]]:
    """The (task, subset) groups a row is scored in: ST by target language; SQA by question type and pooled."""
    if row["task"] == "st":
        return [("st", row["tgt_lang"] or "en")]
    if row["task"] == "sqa":
        kind = row.get("question_type")
        return [("sqa", kind), ("sqa", "all")] if kind else [("sqa", "all")]
    return [(row["task"], "en")]


def row_instruction(row: dict) -> str:
    return task_instruction(PIPELINE_TASK[row["task"]], row["tgt_lang"], row["question"])


# ---------------------------------------------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------------------------------------------


def run_speechllm(pipe, rows, batch_size: int, max_new_tokens: int, log: PredictionLog, system: str = "speechllm",
                  decoding: dict | None = None):
    """Our predictions in row order, and the seconds they took; rows the log already has are not run again.
    Transcription rows decode as the pipeline's task="transcribe" does (the config's CTC weight and beams, or
    `decoding`'s); the other tasks with the LLM alone, greedily."""
    ids = [row["id"] for row in rows]
    groups = {}
    for index in log.missing(system, ids):
        groups.setdefault(row_instruction(rows[index]), []).append(index)
    with tqdm(total=len(rows), initial=len(rows) - sum(map(len, groups.values())), desc=system, unit="clip") as progress:
        for instruction, indices in groups.items():
            indices.sort(key=lambda i: rows[i]["duration"])  # batches of like lengths: little padding, like stopping points
            for start in range(0, len(indices), batch_size):  # one batch at a time, so the bar moves within a group
                batch = indices[start : start + batch_size]
                started = time.perf_counter()
                audios = [rows[i]["audio_source"] for i in batch]
                how = {"task": "transcribe", **(decoding or {})} if rows[batch[0]]["task"] == "asr" else {"instruction": instruction}
                outputs = pipe(audios, batch_size=batch_size, max_new_tokens=max_new_tokens, **how)
                log.add(system, [ids[i] for i in batch], outputs, time.perf_counter() - started)
                progress.update(len(batch))
    return log.predictions(system, ids), log.seconds[system]


def run_text_ceiling(pipe, rows, batch_size: int, max_new_tokens: int, log: PredictionLog) -> tuple[list[str], float]:
    """The same model reading the true transcript in the audio's place (the text prompt of stage C's MT twins)."""
    template = pipe.processor.text_prompt_template
    ids = [row["id"] for row in rows]
    todo = log.missing("text-only", ids)
    with tqdm(total=len(rows), initial=len(rows) - len(todo), desc="text-only ceiling", unit="text") as progress:
        for start in range(0, len(todo), batch_size):  # a batch at a time, so that the bar moves
            batch = todo[start : start + batch_size]
            chats = [[{"role": "user", "content": template.format(text=rows[i]["transcript"], instruction=row_instruction(rows[i]))}]
                     for i in batch]
            started = time.perf_counter()
            outputs = pipe(chats, batch_size=batch_size, max_new_tokens=max_new_tokens)
            log.add("text-only", [ids[i] for i in batch], outputs, time.perf_counter() - started)
            progress.update(len(batch))
    return log.predictions("text-only", ids), log.seconds["text-only"]


def real_time_factors(pipe, rows, batch_sizes: list[int], max_new_tokens: int, decoding: dict | None = None) -> dict[str, float]:
    """Seconds of compute per second of audio, transcribing the same clips at each batch size (after one warm-up),
    with the decoding that transcription uses (joint CTC beam search included)."""
    clips = [row["audio_source"] for row in rows]
    seconds_of_audio = sum(row["duration"] for row in rows)
    pipe(clips[:1], task="transcribe", max_new_tokens=4, **(decoding or {}))
    factors = {}
    for size in batch_sizes:
        started = time.perf_counter()
        pipe(clips, task="transcribe", batch_size=size, max_new_tokens=max_new_tokens, **(decoding or {}))
        factors[str(size)] = (time.perf_counter() - started) / seconds_of_audio
    return factors


def unreferenced_adherence(pipe, rows, languages, batch_size: int, max_new_tokens: int, log: PredictionLog) -> tuple[dict, dict]:
    """Translations of the ASR clips into each language, and the share of them langid finds in that language."""
    shares, outputs = {}, {}
    for language in languages:
        requests = [{**row, "task": "st", "tgt_lang": language} for row in rows]
        outputs[language], _ = run_speechllm(pipe, requests, batch_size, max_new_tokens, log, f"speechllm→{language}")
        shares[language] = adherence(outputs[language], language)
    return shares, outputs


def run_whisper(whisper_dir: str, rows, batch_size: int, log: PredictionLog) -> tuple[list[str], float]:
    """Whisper's own encoder-decoder on the same audio (greedy, English, no timestamps)."""
    rate = WhisperTranscriber.SAMPLING_RATE
    ids = [row["id"] for row in rows]
    todo = log.missing("whisper", ids)
    started = time.perf_counter()
    transcriber = WhisperTranscriber(whisper_dir) if todo else None
    loading = time.perf_counter() - started  # counted with the first batch, as one run would
    for start in tqdm(range(0, len(todo), batch_size), desc="whisper reference", unit="batch"):
        batch = todo[start : start + batch_size]
        started = time.perf_counter()
        outputs = transcriber([load_audio(rows[i]["audio_source"], None, rate) for i in batch])
        log.add("whisper", [ids[i] for i in batch], outputs, time.perf_counter() - started + loading)
        loading = 0.0
    return log.predictions("whisper", ids), log.seconds["whisper"]


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
    scores["target_language"] = adherence(predictions, language)
    if comet is not None:
        scores["comet"] = comet([row["transcript"] or "" for row in rows], predictions, references)
    return scores


def score_system(rows, predictions, comet) -> dict:
    groups = {}
    for row, prediction in zip(rows, predictions):
        for key in group_keys(row):
            groups.setdefault(key, ([], []))
            groups[key][0].append(row)
            groups[key][1].append(prediction)
    return {f"{task}/{language}": score_group(task, language, r, p, comet) for (task, language), (r, p) in sorted(groups.items())}


# ---------------------------------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------------------------------

# (score, label, scale) per task, the first one plotted.
REPORTED = {
    "asr": [("wer", "WER ↓", 100)],
    "st": [("bleu", "BLEU ↑", 1), ("chrf", "chrF ↑", 1), ("target_language", "% in target language ↑", 100)],
    "sqa": [("accuracy", "accuracy % ↑", 100)],
}


def headline(group: str, scores: dict) -> tuple[str, float]:
    key, label, scale = REPORTED[group.split("/")[0]][0]
    return label, scores[key] * scale


def markdown_table(results: dict) -> str:
    systems = list(results["systems"])
    groups = sorted({g for s in systems for g in results["systems"][s]["scores"]})
    lines = ["| task | subset | metric | " + " | ".join(systems) + " |", "| --- | --- | --- |" + " ---: |" * len(systems)]
    for group in groups:
        task, subset = group.split("/")
        for key, label, scale in REPORTED[task]:
            cells = []
            for system in systems:
                scores = results["systems"][system]["scores"].get(group)
                cells.append(f"{scores[key] * scale:.1f}" if scores else "—")
            lines.append(f"| {task.upper()} | {subset} | {label} | " + " | ".join(cells) + " |")
    lines.append("| all | | real-time factor ↓ | " + " | ".join(f"{results['systems'][s]['rtf']:.3f}" for s in systems) + " |")
    for language, share in results.get("adherence_without_reference", {}).items():
        lines.append(f"| ST | {language} (ASR clips, no reference) | % in target language ↑ | {100 * share:.1f} |" + " — |" * (len(systems) - 1))
    for size, factor in results.get("rtf_by_batch_size", {}).items():
        lines.append(f"| ASR | batch {size} | real-time factor ↓ | {factor:.3f} |" + " — |" * (len(systems) - 1))
    return "\n".join(lines) + "\n"


def plot(results: dict, path: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(results["systems"])
    groups = sorted({g for s in systems for g in results["systems"][s]["scores"]})
    figure, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.4), squeeze=False)
    colours = dict(zip(systems, ["tab:blue", "tab:gray", "tab:orange", "tab:green"]))
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


def evaluation_rows(data, processor, limit: int | None, per_task: int | None = None, **source_options) -> list[dict]:
    """The usable ASR/ST/SQA rows of one source, or of several pooled (ids prefixed by each source's name); with
    `per_task`, a seeded sample of that many rows of each task (fewer where a task has fewer), in source order.
    `source_options` (split, columns, ...) apply to every source that does not set its own (training/sources.py)."""
    specs = [data] if isinstance(data, (str, dict)) else list(data)
    rows = []
    for spec in specs:
        source = parse_source(spec, **source_options)
        if source.augment:
            raise DataError(f"{source.name}: augment is a training option; evaluation scores the recordings as they are")
        name = source.name
        part = usable_rows_of_tasks(spec, EVALUATED_TASKS, processor, f"eval {name}", **source_options)
        rows += [{**row, "id": f"{name}/{row['id']}"} for row in part] if len(specs) > 1 else part
    if per_task is not None:
        rows = sample_per_task(rows, per_task)
    return rows[:limit]


def sample_per_task(rows: list[dict], count: int, seed: int = 0) -> list[dict]:
    """`count` rows of each task drawn with a fixed seed, so that a CPU-sized evaluation is balanced across tasks
    (a manifest's first N rows are often one task) and the same rows for every model it compares."""
    chosen = set()
    for task in EVALUATED_TASKS:
        indices = [index for index, row in enumerate(rows) if row["task"] == task]
        chosen.update(random.Random(seed).sample(indices, min(count, len(indices))))
    return [row for index, row in enumerate(rows) if index in chosen]


def add_system(results: dict, name: str, rows, predictions: list[str], seconds: float, comet):
    """A system's scores and real-time factor over `rows`, and its prediction beside each row's reference."""
    results["systems"][name] = {
        "scores": score_system(rows, predictions, comet),
        "rtf": seconds / sum(row["duration"] for row in rows),
    }
    attach_predictions(results, name, rows, predictions)


def attach_predictions(results: dict, name: str, rows, predictions: list[str]):
    """Each prediction beside its row's reference in results["predictions"], under `name`."""
    by_id = dict(zip((row["id"] for row in rows), predictions))
    for entry in results["predictions"]:
        if entry["id"] in by_id:
            entry[name] = by_id[entry["id"]]


def evaluate_model(
    model_dir,
    data,
    output_dir,
    whisper_reference=None,
    batch_size=8,
    max_new_tokens=100,
    limit=None,
    text_ceiling=False,
    rtf_batch_sizes=(),
    rtf_clips=8,
    translate_to=(),
    per_task=None,
    source_options=None,
    decoding=None,
    keep_in=None,
    dtype="float32",
):
    """`decoding`: {"ctc_weight", "num_beams"} for the transcription rows, where not the checkpoint's own; `keep_in`:
    a results file kept beside shipped weights, which every build of them puts in its model card."""
    from transformers import pipeline

    import torch

    pipe = pipeline("speech-instruct", model=model_dir, dtype=getattr(torch, dtype))
    pipe.model.merge_lora()  # inference only: folded adapters decode ~1.25× faster, same tokens (bench/RESULTS.md)
    rows = evaluation_rows(data, pipe.processor, limit, per_task, **(source_options or {}))
    if not rows:
        raise ValueError(f"{data} has no usable ASR/ST/SQA rows to evaluate")
    comet, comet_note = comet_scorer()
    settings = {"model": model_fingerprint(model_dir), "data": data, "rows": len(rows),
                "row_ids": hashlib.sha1("\n".join(row["id"] for row in rows).encode()).hexdigest(),
                "max_new_tokens": max_new_tokens, "batch_size": batch_size, "decoding": transcription_decoding(pipe, decoding)}
    if dtype != "float32":  # the weights' precision changes the tokens: a log of one never resumes the other
        settings["decoding"]["dtype"] = dtype
    log = PredictionLog(os.path.join(output_dir, "predictions.jsonl"), settings)
    results = {
        "model": model_dir,
        "data": data,
        "rows": len(rows),
        "audio_seconds": sum(row["duration"] for row in rows),
        "comet": comet_note,
        "systems": {},
        "predictions": [{"id": row["id"], "task": row["task"], "reference": reference_of(row)} for row in rows],
    }
    results["decoding"] = settings["decoding"]
    add_system(results, "speechllm", rows, *run_speechllm(pipe, rows, batch_size, max_new_tokens, log, decoding=decoding), comet)
    asr_rows = [row for row in rows if row["task"] == "asr"]
    if rtf_batch_sizes and asr_rows:
        results["rtf_by_batch_size"] = real_time_factors(pipe, asr_rows[:rtf_clips], list(rtf_batch_sizes), max_new_tokens, decoding)
    read = [row for row in rows if row["task"] in ("st", "sqa") and row["transcript"]]
    if text_ceiling and read:
        add_system(results, "text-only", read, *run_text_ceiling(pipe, read, batch_size, max_new_tokens, log), comet)
    if translate_to and asr_rows:
        results["adherence_without_reference"], translations = unreferenced_adherence(
            pipe, asr_rows, translate_to, batch_size, max_new_tokens, log
        )
        for language, outputs in translations.items():
            attach_predictions(results, f"speechllm→{language}", asr_rows, outputs)
    if whisper_reference and asr_rows:
        add_system(results, "whisper", asr_rows, *run_whisper(whisper_reference, asr_rows, batch_size, log), None)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump(results, handle, indent=2, ensure_ascii=False)
    table = markdown_table(results)
    with open(os.path.join(output_dir, "results.md"), "w") as handle:
        handle.write(table + f"\n{comet_note}\n")
    plot(results, os.path.join(output_dir, "results.png"))
    print(table)
    print(comet_note)
    if keep_in:
        keep_results(keep_in, data_name(data, source_options or {}), results["systems"]["speechllm"]["scores"], results["decoding"])
        print(f"scores kept in {keep_in}")
    if os.path.exists(os.path.join(model_dir, "config.json")):  # a local checkpoint: its model card gets the scores
        try:
            card = record_results(model_dir, data_name(data, source_options or {}), results["systems"]["speechllm"]["scores"])
            print(f"scores added to the model card {card}")
        except OSError as error:  # a read-only checkpoint: the scores are in OUT all the same
            logger.warning("could not add the scores to %s/README.md (%s); they are in %s", model_dir, error, output_dir)
    return results


def transcription_decoding(pipe, decoding: dict | None) -> dict:
    """How the transcription rows are decoded: the given settings over the checkpoint's (config.transcribe_*)."""
    config = pipe.model.config
    chosen = {"ctc_weight": config.transcribe_ctc_weight, "num_beams": config.transcribe_num_beams}
    chosen.update({key: value for key, value in (decoding or {}).items() if value is not None})
    return chosen


def data_name(data, source_options: dict) -> str:
    """The evaluation data's name on the model card: its sources' names, joined."""
    specs = [data] if isinstance(data, (str, dict)) else list(data)
    return " + ".join(parse_source(spec, **source_options).name for spec in specs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, nargs="+",
                        help="data sources, pooled: manifests (.jsonl/.csv/.tsv), dataset directories (saved, audiofolder, "
                             "parquet), Hub ids, or JSON objects naming one with its options (training/sources.py)")
    parser.add_argument("--split", default="test", help="the split of a dataset source (default: test)")
    parser.add_argument("--dataset_config", help="the datasets' configuration (load_dataset's name)")
    for column in ("audio", "text", "translation", "question", "answer"):
        parser.add_argument(f"--{column}_column", help=f"the sources' {column} column, where it is not the project's name")
    parser.add_argument("--streaming", action="store_true", help="read dataset sources as a stream (with --limit)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--whisper_reference", help="a Whisper checkpoint to transcribe the ASR rows beside ours")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_new_tokens", type=int, default=100)
    parser.add_argument("--limit", type=int, help="evaluate the first N usable rows only")
    parser.add_argument("--per_task", type=int, help="evaluate a seeded sample of N rows of each task (ASR, ST, SQA)")
    parser.add_argument("--text_ceiling", action="store_true", help="also run the LLM on the true transcripts (ST, SQA)")
    parser.add_argument("--rtf_batch_sizes", type=int, nargs="*", default=[], help="e.g. 1 8: real-time factor per batch size")
    parser.add_argument("--rtf_clips", type=int, default=8, help="ASR clips the real-time factors are measured on")
    parser.add_argument("--translate_to", nargs="*", default=[], help="e.g. de it zh: translate the ASR clips, report the language share")
    parser.add_argument("--ctc_weight", type=float,
                        help="transcription: λ of joint CTC/LLM decoding (0: the LLM alone); default: the checkpoint's")
    parser.add_argument("--num_beams", type=int, help="transcription: the beam size; default: the checkpoint's")
    parser.add_argument("--keep_in", help="also keep the scores in this results file (default_model/results.json: the "
                                          "shipped default's, which every build of it puts in its model card)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                        help="the model's weights (bfloat16: ~1.8x faster on CPUs with AVX-512 bf16 or AMX, and on GPUs)")
    add_threads_argument(parser)
    args = parser.parse_args()
    use_threads(args.threads, "evaluation.run")
    logging.basicConfig(level=logging.WARNING)
    columns = ("audio_column", "text_column", "translation_column", "question_column", "answer_column")
    source_options = {"split": args.split, "config": args.dataset_config, "streaming": args.streaming or None,
                      "max_rows": args.limit if args.streaming else None, **{name: getattr(args, name) for name in columns}}
    try:
        evaluate_model(
            args.model, args.data, args.output_dir, args.whisper_reference, args.batch_size, args.max_new_tokens,
            args.limit, args.text_ceiling, args.rtf_batch_sizes, args.rtf_clips, args.translate_to, args.per_task,
            source_options, {"ctc_weight": args.ctc_weight, "num_beams": args.num_beams}, args.keep_in, args.dtype,
        )
    except DataError as error:  # unusable data: the message says which source and the fix; no traceback
        raise SystemExit(f"evaluation.run: {error}")


if __name__ == "__main__":
    main()
