"""Training data: sources → validated rows → task examples → model batches.

A manifest is JSONL, CSV or TSV with the columns a task needs (`audio`, `transcript`, `task`, `src_lang`,
`tgt_lang`, `translation`, `question`, `answer`); a `datasets` directory saved with `save_to_disk`, an audiofolder
or a Hub dataset works too, its columns mapped onto these (training/sources.py). Audio is decoded with soundfile (no
torchcodec). Bad rows are reported with their
ids and skipped, and counted at the end: a run never dies halfway on one bad file, and never drops rows silently.
"""

import collections
import logging
import os
import zlib

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from processing_speechllm import TRANSCRIBE_INSTRUCTION, load_audio, translation_instruction
from training.sources import DataError, load_source, parse_source

logger = logging.getLogger("speechllm.data")

MANIFEST_COLUMNS = ("audio", "transcript", "task", "src_lang", "tgt_lang", "translation", "question", "answer")
SPEECH_TASKS = ("asr", "st", "sqa")
TEXT_TASKS = ("mt", "qa", "read")
# Columns each task needs (besides the task itself).
TASK_COLUMNS = {
    "asr": ("audio", "transcript"),
    "st": ("audio", "tgt_lang", "translation"),
    "sqa": ("audio", "question", "answer"),
    "mt": ("transcript", "tgt_lang", "translation"),
    "qa": ("transcript", "question", "answer"),
    "read": ("transcript",),  # ASR's text twin: the transcript in the speech slot, transcribed (stage B)
}
UNUSED = "no task for this stage"
# The text twin of a speech task: the same row with its transcript in place of the audio.
TEXT_TWIN = {"st": "mt", "sqa": "qa"}


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


def read_rows(spec, **defaults) -> datasets.Dataset:
    """One source (training/sources.py: a manifest, a dataset directory, an audiofolder or a Hub id, with its
    options) → a Dataset with every manifest column, `id`, and the source's `source_weight`."""
    source = parse_source(spec, **defaults)
    dataset = load_source(source)
    if isinstance(dataset, datasets.IterableDataset):
        dataset = materialise_stream(dataset, source)
    if len(dataset) == 0:
        raise DataError(f"{source.name} has no rows" + (f" for speakers={source.speakers!r}" if source.speakers != "all" else ""))
    base_dir = os.path.dirname(os.path.abspath(source.path)) if source.is_manifest() else os.path.abspath(source.path)
    dataset = normalise_columns(dataset, base_dir)
    dataset = dataset.add_column("augment_share", [float(source.augment)] * len(dataset))
    return dataset.add_column("source_weight", [float(source.weight)] * len(dataset))


def materialise_stream(stream: datasets.IterableDataset, source) -> datasets.Dataset:
    """A streamed source's rows, read once, in order, into a local Arrow table (audio as bytes, undecoded)."""
    def rows():  # the progress bar made inside: from_generator pickles the function to name its cache
        yield from (dict(row) for row in tqdm(stream, desc=f"streaming {source.name}", unit=" rows"))

    return datasets.Dataset.from_generator(rows)


def read_manifests(specs, **defaults) -> datasets.Dataset:
    """One source, or several read as one: the columns they all have, each resolving its own relative audio paths
    (e.g. a build spoken by natural voices beside a larger one spoken by the fast voices, beside a real corpus).
    Row ids may repeat across sources: they only name rows in messages."""
    if isinstance(specs, (str, dict)):
        return read_rows(specs, **defaults)
    if not specs:
        raise DataError("no data given: name one or more manifests, dataset directories or Hub ids")
    parts = [read_rows(spec, **defaults) for spec in specs]
    shared = [column for column in parts[0].column_names if all(column in part.column_names for part in parts)]
    return datasets.concatenate_datasets([part.select_columns(shared) for part in parts])


def apply_source_weights(rows: datasets.Dataset, seed: int = 0) -> datasets.Dataset:
    """Each row as many times as its source's weight: weight 3 → three times, 0.5 → a seeded half of the rows
    (2.5 → twice, and a seeded half once more). The mix of sources in every stage, the task-sampled one included."""
    weights = np.asarray(rows["source_weight"], dtype=np.float64)
    if np.all(weights == 1.0):
        return rows
    rng = np.random.default_rng(seed)
    copies = np.floor(weights).astype(int) + (rng.random(len(weights)) < weights - np.floor(weights))
    return rows.select(np.repeat(np.arange(len(rows)), copies))


def draw_augmentation(rows: datasets.Dataset, seed: int = 0) -> datasets.Dataset:
    """Column `augment_seed`: for each row (each copy a weight made, by itself), with its source's `augment` share, the
    seed its audio is augmented with whenever it is batched, else -1. Drawn once, so an augmented copy sounds the same
    every epoch and after a resume, as an augmented clip of a build would."""
    shares = np.asarray(rows["augment_share"], dtype=np.float64)
    rng = np.random.default_rng([seed, 1])  # its own stream: the weights' draw stays what it was without augment
    chosen, seeds = rng.random(len(rows)) < shares, rng.integers(0, 2**31 - 1, len(rows))
    return rows.add_column("augment_seed", np.where(chosen, seeds, -1).tolist())


def refuse_augmentation(rows: datasets.Dataset, where: str):
    """A DataError for sources with `augment` in a step that never augments, rather than ignoring the option."""
    if any(share > 0 for share in rows["augment_share"]):
        raise DataError(f"augment is not applied {where}: leave it out of those sources (it is an option of the stages "
                        "that read audio every step: the joint stage, C)")


def normalise_columns(dataset: datasets.Dataset, base_dir: str) -> datasets.Dataset:
    """Undecoded audio, relative paths resolved against the manifest, missing columns as None, a string `id`."""
    missing = [c for c in MANIFEST_COLUMNS if c not in dataset.column_names]
    for column in missing:
        dataset = dataset.add_column(column, [None] * len(dataset))
    if "id" not in dataset.column_names:
        dataset = dataset.add_column("id", [str(i) for i in range(len(dataset))])

    def resolve(row):
        audio = row["audio"]
        if isinstance(audio, dict):  # datasets Audio(decode=False): {"path", "bytes"}
            audio = audio.get("bytes") or audio.get("path")
        if isinstance(audio, str) and not os.path.isabs(audio):
            audio = os.path.join(base_dir, audio)
        task = row["task"] or ("asr" if audio is not None else None)
        return {"audio_source": audio, "task": task, "id": str(row["id"])}

    return dataset.map(resolve, remove_columns=["audio"], desc="reading rows")


# ---------------------------------------------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------------------------------------------


def row_problem(row: dict, tasks_needed: tuple[str, ...], check_audio, tokenizer, tokens_per_second) -> dict:
    """Why a row cannot be used: `problem` (the full message, "" when usable) and `reason` (its kind, for counting);
    and its audio duration."""

    def bad(problem: str, reason: str, duration: float = 0.0, num_tokens: int = 0) -> dict:
        return {"problem": problem, "reason": reason, "duration": duration, "num_tokens": num_tokens}

    task = row["task"]
    if task not in TASK_COLUMNS:
        return bad(f"unknown task {task!r} (tasks: {', '.join(TASK_COLUMNS)})", "unknown task")
    if not tasks_needed:
        return bad(UNUSED, UNUSED)
    for needed_task in tasks_needed:
        absent = [c for c in TASK_COLUMNS[needed_task] if row.get(c if c != "audio" else "audio_source") in (None, "")]
        if absent:
            return bad(f"task {needed_task} needs {', '.join(absent)}", f"{needed_task} row without {', '.join(absent)}")
    duration, num_tokens = 0.0, 0
    if row["audio_source"] is not None and any(TASK_COLUMNS[t][0] == "audio" for t in tasks_needed):
        try:
            duration = check_audio(row["audio_source"])
        except ValueError as error:  # AudioError says its kind; any other check of the processor is "unusable audio"
            return bad(str(error), getattr(error, "reason", "unusable audio"))
        if row["transcript"]:
            num_tokens = len(tokenizer(row["transcript"], add_special_tokens=False)["input_ids"])
            frames = int(duration * tokens_per_second)
            if tokens_per_second and num_tokens > frames:
                problem = f"transcript has {num_tokens} tokens but its {duration:.2f} s of audio give only {frames} mapper frames"
                return bad(problem, "transcript longer than its audio's mapper frames", duration, num_tokens)
    return {"problem": "", "reason": "", "duration": duration, "num_tokens": num_tokens}


def keep_usable_rows(dataset, tasks_for_row, processor, check_transcript_fits: bool, name: str) -> datasets.Dataset:
    """Check every row (decoding its audio once), log each bad one with its id and reason, count them by reason,
    and drop them; a DataError when no row is left."""
    rate = processor.sampling_rate
    verdicts = {}  # by audio source: one clip often serves several rows (ASR + its questions)

    def check_audio(source) -> float:
        if source not in verdicts:
            try:
                samples = load_audio(source, None, rate, name="audio")
                processor.extract_features(processor.prepare_audio([samples], rate))  # the processor's own checks
                verdicts[source] = len(samples) / rate
            except ValueError as error:
                verdicts[source] = error
        if isinstance(verdicts[source], ValueError):
            raise verdicts[source]
        return verdicts[source]

    tokens_per_second = mapper_frames_per_second(processor) if check_transcript_fits else 0.0
    checked = dataset.map(
        lambda row: row_problem(row, tasks_for_row(row), check_audio, processor.tokenizer, tokens_per_second),
        desc=f"checking {name}",
    )
    for row_id, problem in zip(checked["id"], checked["problem"]):
        if problem and problem != UNUSED:
            logger.warning("%s: skipping row %s: %s", name, row_id, problem)
    usable = checked.filter(lambda row: not row["problem"], desc=f"dropping bad rows of {name}")
    summary = summarise_skipped(checked["reason"], len(usable), name)
    logger.warning("%s", summary)
    if len(usable) == 0:
        raise DataError(
            f"{summary}. No row of the {name} data is usable for this stage: fix the rows logged above (each by its "
            "id), or give a manifest with the columns this stage needs (README, Training: Data)"
        )
    return usable


def summarise_skipped(reasons: list[str], num_usable: int, name: str) -> str:
    """"train: 3 of 12 rows usable; 8 skipped as bad (5 audio file does not exist, ...); 1 with no task for this
    stage", the reasons commonest first."""
    counts = collections.Counter(reason for reason in reasons if reason and reason != UNUSED)
    unused = sum(1 for reason in reasons if reason == UNUSED)
    text = f"{name}: {num_usable} of {len(reasons)} rows usable, {sum(counts.values())} skipped as bad"
    if counts:
        text += " (" + ", ".join(f"{count} {reason}" for reason, count in counts.most_common()) + ")"
    return text + f", {unused} with no task for this stage"


def usable_rows_of_tasks(spec, tasks: tuple[str, ...], processor, name: str, limit: int | None = None, **defaults) -> list[dict]:
    """The usable rows of a source whose task is one of `tasks` (the others are dropped as unused), in its order."""
    rows = keep_usable_rows(read_rows(spec, **defaults), lambda row: (row["task"],) if row["task"] in tasks else (), processor, False, name)
    return list(rows)[:limit]


def mapper_frames_per_second(processor) -> float:
    """Mapper frames per second of audio (exact for whole multiples of the downsampling)."""
    hop_seconds = 0.01 * getattr(processor.feature_extractor, "stride", 1)  # 10 ms mel hops, stacked by `stride`
    return float(processor.num_audio_tokens(10_000)) / (10_000 * hop_seconds)


# ---------------------------------------------------------------------------------------------------------------
# Examples per stage
# ---------------------------------------------------------------------------------------------------------------


def example_tasks(row: dict, stage: str, read: bool = False) -> tuple[str, ...]:
    """What a row is trained as in a stage: the mapper learns ASR from every transcribed clip; the text stage
    uses MT/QA rows and the text twins of ST/SQA rows (and, with `read`, ASR rows as `read`: transcribing the
    transcript from the speech slot); the joint stage the speech tasks (+ MT/QA rows)."""
    task = row["task"]
    if stage == "mapper":
        return ("asr",)
    if stage == "text":
        if read and task == "asr":
            return ("read",)
        return (task,) if task in TEXT_TASKS else ((TEXT_TWIN[task],) if task in TEXT_TWIN else ())
    return (task,)


def build_examples(rows: datasets.Dataset, stage: str, add_asr: bool = False, pair_text_twins: bool = False, read: bool = False):
    """One example per (row, task): column `as_task`; `twin_of` links an MT twin to its ST example."""
    records = []
    for index, row in enumerate(rows):
        tasks = list(example_tasks(row, stage, read))
        if stage == "joint" and add_asr and row["task"] != "asr" and row["audio_source"] and row["transcript"]:
            tasks.append("asr")
        for task in tasks:
            records.append({"row": index, "as_task": task, "twin_of": -1})
            if pair_text_twins and task in TEXT_TWIN and row["transcript"]:
                records.append({"row": index, "as_task": TEXT_TWIN[task], "twin_of": len(records) - 1})
    if not records:
        raise DataError(f"no usable examples for stage {stage}: check the task column and the required columns")
    examples = datasets.Dataset.from_list(records)
    # As plain lists: a Dataset's column is read item by item when added to another (minutes at 50k rows).
    for name, values in rows.select(examples["row"]).to_dict().items():
        examples = examples.add_column(name, values)
    return examples


def require_sampled_tasks(examples: datasets.Dataset, probabilities: dict[str, float], stage: str, name: str):
    """Every task given a weight in `task_probabilities` must have examples: a DataError otherwise, rather than a
    silently different task mix. Stage B prepares the text twins (MT for ST, QA for SQA) of the named tasks."""
    named = [task for task, weight in probabilities.items() if weight > 0]
    wanted = {task: TEXT_TWIN[task] for task in named if task in TEXT_TWIN} if stage == "text" else {t: t for t in named}
    present = collections.Counter(examples["as_task"])
    missing = {task: example_task for task, example_task in wanted.items() if not present[example_task]}
    if missing:
        having = ", ".join(f"{count} {task}" for task, count in sorted(present.items()))
        needs = ", ".join(f"{task} (as {example_task} examples)" if task != example_task else task for task, example_task in missing.items())
        kept = ",".join(f"{task}={weight}" for task, weight in probabilities.items() if task not in missing and weight > 0)
        fix = f"--task_probabilities {kept}" if kept else "--task_probabilities with the tasks the data has"
        raise DataError(
            f"{name}: task_probabilities {probabilities} names {needs}, but the usable rows give none (they give "
            f"{having or 'nothing'}): add such rows, or leave the task out, e.g. {fix}"
        )


# ---------------------------------------------------------------------------------------------------------------
# Prompts and batches
# ---------------------------------------------------------------------------------------------------------------


def instruction_for(example: dict) -> str:
    task = example["as_task"]
    if task in ("asr", "read"):
        return TRANSCRIBE_INSTRUCTION
    if task in ("st", "mt"):
        return translation_instruction(example["tgt_lang"])
    return example["question"]


def target_for(example: dict) -> str:
    return {"asr": example["transcript"], "read": example["transcript"], "st": example["translation"],
            "mt": example["translation"]}.get(example["as_task"], example["answer"])


def speech_slot_text(example: dict, processor, pad_token: str) -> str:
    """The transcript as a perfect stage-A mapper would write it into the speech slot: its tokens, then the mapper's
    pad token for the remaining frames (0.5-1.5x as many as tokens, fixed per example: real clips vary so)."""
    num_tokens = len(processor.tokenizer(example["transcript"], add_special_tokens=False)["input_ids"])
    ratio = 0.5 + (zlib.crc32(f"{example['id']}:{example['as_task']}".encode()) % 1001) / 1000
    return example["transcript"] + pad_token * round(num_tokens * ratio)


def conversation_for(example: dict, processor, slot_pad_token: str | None = None) -> list[dict]:
    """The example's chat. Text tasks read the transcript from the text prompt, or, given the mapper's pad token,
    from the speech slot (as stage C's audio will fill it: the adapters learn to read that slot before audio arrives)."""
    instruction = instruction_for(example)
    if example["as_task"] in TEXT_TASKS:
        if slot_pad_token is not None:
            slot = speech_slot_text(example, processor, slot_pad_token)
            text = processor.prompt_template.format(audio=slot, instruction=instruction)
        elif example["as_task"] == "read":
            raise ValueError("the read task needs the speech slot: give InstructionCollator the mapper's pad token")
        else:
            text = processor.text_prompt_template.format(text=example["transcript"], instruction=instruction)
        return [{"role": "user", "content": text}]
    audio = {"type": "audio", "audio": example["audio_source"]}
    return [{"role": "user", "content": [audio, {"type": "text", "text": instruction}]}]


class AudioAugmentation:
    """The audio of an example drawn for augmentation (`augment_seed` ≥ 0, draw_augmentation), decoded and changed
    by synthesis/augmentation.py's chain with that seed; every other example keeps its source for the processor to
    decode. A copy sped up until its transcript no longer fits its mapper frames is heard clean instead: the check
    that keeps such rows out of training holds for their augmented copies too."""

    def __init__(self, processor):
        self.processor = processor
        self.frames_per_second = mapper_frames_per_second(processor)
        self.augmenter = None  # built on the first augmented example: audiomentations loads slowly

    def __call__(self, example: dict) -> dict:
        seed = example.get("augment_seed")
        if seed is None or seed < 0 or example["as_task"] not in SPEECH_TASKS:
            return example
        from synthesis.augmentation import SAMPLING_RATE, Augmenter

        if self.augmenter is None:
            self.augmenter = Augmenter()
        clean = load_audio(example["audio_source"], None, SAMPLING_RATE, name=f"audio of row {example['id']}")
        samples, _ = self.augmenter(clean, seed)
        if example["transcript"] and self.too_short(example["transcript"], len(samples) / SAMPLING_RATE):
            return example
        return {**example, "audio_source": {"array": samples, "sampling_rate": SAMPLING_RATE}}

    def too_short(self, transcript: str, seconds: float) -> bool:
        num_tokens = len(self.processor.tokenizer(transcript, add_special_tokens=False)["input_ids"])
        return num_tokens > int(seconds * self.frames_per_second)


class InstructionCollator:
    """Examples → prompt + answer ids, labels only on the answer, audio features, and transcript ids (for σ·MSE).
    Examples drawn for augmentation are heard augmented (AudioAugmentation)."""

    def __init__(self, processor, slot_pad_token: str | None = None):
        self.processor = processor
        self.slot_pad_token = slot_pad_token  # text tasks in the speech slot (stage B with --text_in_speech_slot)
        self.augmentation = AudioAugmentation(processor)

    def __call__(self, examples: list[dict]) -> dict:
        examples = [self.augmentation(e) for e in examples]
        conversations = [conversation_for(e, self.processor, self.slot_pad_token) for e in examples]
        targets = [target_for(e) for e in examples]
        batch = dict(self.processor.apply_chat_template(conversations, targets=targets))
        spoken = [e for e in examples if e["as_task"] in SPEECH_TASKS]
        if spoken:
            batch["transcript_ids"] = pad_token_rows(
                [self.tokenize(e["transcript"]) if e["transcript"] else [] for e in spoken]
            )
        return batch

    def tokenize(self, text: str) -> list[int]:
        return self.processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def pad_token_rows(rows: list[list[int]]) -> torch.Tensor:
    width = max(1, max(len(r) for r in rows))
    return torch.tensor([r + [-100] * (width - len(r)) for r in rows], dtype=torch.long)


# ---------------------------------------------------------------------------------------------------------------
# Joint stage: task sampling and paired batches
# ---------------------------------------------------------------------------------------------------------------


class TaskBatchSampler(torch.utils.data.Sampler):
    """Batches of one task each, the task drawn with `task_probabilities` (ST target languages with
    `language_probabilities`); with paired twins, every ST batch is followed by the MT batch of the same rows.

    Batches come in rounds of `num_processes` of the same kind, so that when the data loader deals batch i to
    process i % num_processes, every process gets an ST batch and then its own MT twin batch, and all processes
    run the same modules at each step. Every batch is full. Deterministic for a (seed, epoch); `set_epoch` reshuffles.
    """

    def __init__(self, examples, batch_size, task_probabilities, language_probabilities, num_processes=1, seed=0):
        self.batch_size, self.num_processes, self.seed, self.epoch = batch_size, num_processes, seed, 0
        tasks, languages, twins = examples["as_task"], examples["tgt_lang"], examples["twin_of"]
        self.twin_of_example = {source: index for index, source in enumerate(twins) if source >= 0}
        self.pools = {}
        for index, (task, language) in enumerate(zip(tasks, languages)):
            if task in SPEECH_TASKS:
                self.pools.setdefault((task, language if task == "st" else None), []).append(index)
        self.pool_weights = self.weights(task_probabilities, language_probabilities)
        self.num_rounds = max(1, sum(len(p) for p in self.pools.values()) // (batch_size * num_processes))

    def weights(self, task_probabilities, language_probabilities) -> dict:
        weights = {}
        for task, language in self.pools:
            weight = task_probabilities.get(task, 0.0)
            if task == "st":
                present = [lang for t, lang in self.pools if t == "st"]
                total = sum(language_probabilities.get(lang, 0.0) for lang in present) or 1.0
                weight *= language_probabilities.get(language, 0.0) / total
            weights[(task, language)] = weight
        if sum(weights.values()) <= 0:
            raise ValueError(f"task probabilities {task_probabilities} give zero weight to every task in the data")
        return weights

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def rngs(self):
        """Separate streams for the task draws and the shuffling, so __len__ can replay the draws alone."""
        return np.random.default_rng([self.seed, self.epoch, 0]), np.random.default_rng([self.seed, self.epoch, 1])

    def __len__(self) -> int:
        task_rng, _ = self.rngs()
        return sum(1 for _ in self.round_kinds(task_rng)) * self.num_processes

    def round_kinds(self, rng):
        keys = [k for k in self.pools if self.pool_weights[k] > 0]
        probabilities = np.array([self.pool_weights[k] for k in keys])
        for _ in range(self.num_rounds):
            key = keys[rng.choice(len(keys), p=probabilities / probabilities.sum())]
            yield key
            if key[0] == "st" and self.twin_of_example:
                yield ("twin", key)

    def __iter__(self):
        task_rng, rng = self.rngs()
        order = {key: list(rng.permutation(pool)) for key, pool in self.pools.items()}
        cursor = dict.fromkeys(self.pools, 0)
        previous_round = []
        for kind in self.round_kinds(task_rng):
            if kind[0] == "twin":
                batches = [self.full([self.twin_of_example[i] for i in batch if i in self.twin_of_example] or batch) for batch in previous_round]
            else:
                batches = [self.draw(kind, order, cursor, rng) for _ in range(self.num_processes)]
            previous_round = batches
            yield from batches

    def draw(self, key, order, cursor, rng) -> list[int]:
        pool = order[key]
        if cursor[key] + self.batch_size > len(pool):  # pool exhausted: reshuffle it and start over
            order[key] = pool = list(rng.permutation(self.pools[key]))
            cursor[key] = 0
        batch = pool[cursor[key] : cursor[key] + self.batch_size]
        cursor[key] += self.batch_size
        return self.full([int(i) for i in batch])

    def full(self, batch: list[int]) -> list[int]:
        """The batch cycled up to `batch_size` (a pool smaller than a batch; ST rows without an MT twin). accelerate's
        BatchSamplerShard takes a short batch for the epoch's last and then deals the processes different numbers
        of batches: one process waits for the others' gradients forever."""
        return [batch[i % len(batch)] for i in range(self.batch_size)]


def parse_probabilities(text: str) -> dict[str, float]:
    """"asr=0.3,st=0.4,sqa=0.3" → {"asr": 0.3, ...}"""
    pairs = [item.split("=") for item in text.split(",") if item.strip()]
    try:
        return {key.strip(): float(value) for key, value in pairs}
    except ValueError as error:
        raise ValueError(f"cannot read probabilities {text!r}: write them as name=weight,name=weight") from error
