"""The model card (README.md) that every speechllm checkpoint carries, as the Hub expects it.

train.py writes one into each checkpoint it saves, scripts/build_default_model.py and the weight exports into theirs,
and evaluation.run adds what it measured to the card's `model-index`. The metadata is what
`huggingface_hub.ModelCard` parses: licence, base models (the encoder and the LLM), data, languages, pipeline tag,
library, tags; the text says what the model is made of, how it was trained, how to use it and what it cannot do.
"""

import json
import os

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from configuration_speechllm import SpeechLLMConfig

CARD = "README.md"
TRAINING_FILE = "training_info.json"  # the stage and settings that made the checkpoint, beside its config
LANGUAGES = ["en", "de", "it", "zh"]
TAGS = ["speech", "speech-translation", "spoken-question-answering", "asr", "speechllm", "lora", "iwslt"]
# (task, metric) of an evaluation.run score group → the Hub's task type, metric type and name
REPORTED = {
    "asr": ("automatic-speech-recognition", "wer", "WER", 100),
    "st": ("translation", "chrf", "chrF", 1),
    "sqa": ("question-answering", "accuracy", "SQA accuracy", 100),
}

USAGE = """```python
from transformers import pipeline

pipe = pipeline("speech-instruct", model="{repo}", trust_remote_code=True)
pipe.model.merge_lora()  # inference only: folds the LoRA adapters in
pipe("talk.wav", task="transcribe")
pipe("talk.wav", task="translate", target_language="de")  # de, it, zh
pipe("talk.wav", task="answer", question="What method do they propose?")
```"""

LIMITATIONS = """- A small model trained on a CPU budget, mostly on synthetic speech: expect many more errors than a
  dedicated ASR model (such as its own encoder's Whisper decoder) on real recordings, above all on accented, noisy,
  far-field or child speech; it often keeps a sentence's first words and shape and guesses the rest.
- Translations (English speech → German, Italian, Chinese) follow what it heard, errors included.
- Answers come from the audio only; a question about something not said should be answered "The speaker does not
  say.", and it says so too often.
- English speech only; audio over the encoder's window (30 s for Whisper) is cut into segments by the pipeline."""


def model_card(checkpoint: str, training: dict | None = None, results: list[EvalResult] | None = None) -> ModelCard:
    """The card of a checkpoint directory (its config says what it is made of)."""
    config = SpeechLLMConfig.from_pretrained(checkpoint)
    base = config.base_models or {}
    training = training if training is not None else read_training(checkpoint)
    data = ModelCardData(
        license="apache-2.0",
        base_model=[base[role] for role in ("encoder", "llm") if base.get(role)] or None,
        datasets=training.get("datasets") or None,
        language=LANGUAGES,
        pipeline_tag="audio-text-to-text",
        library_name="transformers",
        tags=TAGS,
        model_name=os.path.basename(os.path.normpath(checkpoint)),
        eval_results=results or None,
    )
    return ModelCard(card_text(data, config, training))


def card_text(data: ModelCardData, config, training: dict) -> str:
    base = config.base_models or {}
    parts = (
        f"- **Speech encoder** (frozen): `{base.get('encoder', config.encoder_config.model_type + ' (random weights)')}`, "
        f"layer {config.encoder_layer}, frames averaged by {config.frame_average}.\n"
        f"- **SpeechMapper**: {len(config.mapper_strides)} blocks (Conv1d kernel {config.mapper_conv_kernel}, strides "
        f"{config.mapper_strides}, {config.mapper_layers_per_block} Transformer layers each, widths {config.mapper_widths}) "
        "→ a linear map into the LLM's embedding space.\n"
        f"- **LLM**: `{base.get('llm', config.text_config.model_type + ' (random weights)')}`"
        + (f", LoRA r {config.lora['r']}, α {config.lora['lora_alpha']}" if config.lora else ", no LoRA")
        + ".\n"
    )
    lines = [
        "---", data.to_yaml(), "---", "",
        f"# {data.model_name}", "",
        "An instruction-following speech LLM made with speechllm, after NAVER "
        "LABS Europe's IWSLT 2025/2026 short-track systems: one model for speech recognition, speech translation "
        "(English audio → German, Italian, Chinese text) and spoken question answering.", "",
        "## Parts", "", parts,
        "## Training", "", training_text(training), "",
        "## Results", "", results_text(data.eval_results), "",
        "## Usage", "", USAGE.format(repo=data.model_name), "",
        "## Limitations", "", LIMITATIONS, "",
    ]
    return "\n".join(lines)


def training_text(training: dict) -> str:
    if not training:
        return "Not trained by train.py (composed from its parts, or random weights for tests)."
    rows = [f"| {key} | {value if not isinstance(value, (list, dict)) else json.dumps(value)} |"
            for key, value in training.items() if key != "datasets"]
    data = ", ".join(f"`{name}`" for name in training.get("datasets", [])) or "—"
    return "\n".join(["| setting | value |", "| --- | --- |", *rows, f"| data | {data} |"])


def results_text(results: list[EvalResult] | None) -> str:
    if not results:
        return "Not evaluated yet (`python -m evaluation.run --model DIR ...` adds its scores here)."
    lines = ["| task | data | metric | value |", "| --- | --- | --- | ---: |"]
    for result in results:
        lines.append(f"| {result.task_type} | {result.dataset_name} | {result.metric_name} | {result.metric_value} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Writing and updating
# ---------------------------------------------------------------------------------------------------------------


def write_model_card(checkpoint: str, training: dict | None = None) -> str:
    """Write the checkpoint's card (and its training settings, when given), keeping results already measured."""
    if training is not None:
        with open(os.path.join(checkpoint, TRAINING_FILE), "w") as handle:
            json.dump(training, handle, indent=1, ensure_ascii=False)
    path = os.path.join(checkpoint, CARD)
    model_card(checkpoint, training, measured_results(checkpoint)).save(path)
    return path


def record_results(checkpoint: str, dataset_name: str, scores: dict) -> str:
    """Add evaluation.run's scores of one evaluation (its `systems.speechllm.scores`) to the card's model-index,
    replacing earlier results on the same data."""
    kept = [result for result in measured_results(checkpoint) if result.dataset_name != dataset_name]
    path = os.path.join(checkpoint, CARD)
    model_card(checkpoint, results=kept + eval_results(dataset_name, scores)).save(path)
    return path


def keep_results(path: str, dataset_name: str, scores: dict, decoding: dict | None = None):
    """Add one evaluation's scores to a results file kept beside shipped weights (default_model/results.json), replacing
    an earlier one on the same data: the model card of every build of those weights then carries them."""
    kept = read_kept_results(path)
    kept = [entry for entry in kept if entry["data"] != dataset_name]
    kept.append({"data": dataset_name, "scores": scores, **({"decoding": decoding} if decoding else {})})
    with open(path, "w") as handle:
        json.dump(sorted(kept, key=lambda entry: entry["data"]), handle, indent=1, ensure_ascii=False)
        handle.write("\n")


def read_kept_results(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return json.load(handle)


def record_kept_results(checkpoint: str, path: str) -> str | None:
    """The card of a checkpoint built from shipped weights, with the scores kept for those weights."""
    card = None
    for entry in read_kept_results(path):
        card = record_results(checkpoint, entry["data"], entry["scores"])
    return card


def eval_results(dataset_name: str, scores: dict) -> list[EvalResult]:
    results = []
    for group, values in sorted(scores.items()):
        task, subset = group.split("/")
        task_type, metric, label, scale = REPORTED[task]
        if metric not in values:
            continue
        results.append(EvalResult(
            task_type=task_type, dataset_type=dataset_name, dataset_name=dataset_name, dataset_split=subset,
            metric_type=metric, metric_name=f"{label} ({subset})", metric_value=round(values[metric] * scale, 2),
        ))
    return results


def measured_results(checkpoint: str) -> list[EvalResult]:
    path = os.path.join(checkpoint, CARD)
    if not os.path.exists(path):
        return []
    return list(ModelCard.load(path).data.eval_results or [])


def read_training(checkpoint: str) -> dict:
    path = os.path.join(checkpoint, TRAINING_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return json.load(handle)
