"""Where rows come from: manifests, saved datasets, audiofolders and Hub datasets, named as transformers' speech
examples name them, each mapped onto the project's columns.

A source is a path or a Hub id, or a JSON object that names one with its own options (a YAML config may write it as
a mapping):

    outputs/fakacl-v2/train.jsonl                           a manifest (.jsonl/.csv/.tsv)
    outputs/some-dataset                                    a directory saved with save_to_disk
    ../shared/data/speechocean762/train                     an audiofolder (metadata.jsonl beside the audio), or
                                                            parquet/arrow/csv files: the same load_dataset call
    mispeech/speechocean762                                 a Hub id (needs the network or the local Hub cache)
    {"path": "../shared/data/speechocean762/train", "text_column": "text", "text_case": "sentence",
     "speakers": "train", "weight": 2}
    {"path": "../shared/data/speechocean762", "text_column": "text", "text_case": "sentence",
     "translations": "synthesis/annotations/speechocean762-train.translations.jsonl"}
                                                            its clips as ST rows (list it again without "translations"
                                                            for its ASR rows); "questions" gives SQA rows
    {"path": "fixie-ai/covost2", "config": "en_de", "text_column": "sentence", "translation_column": "translation",
     "task": "st", "target_language": "de"}                 a corpus of one task and language pair: every row's
                                                            task and target language given once
    {"path": "outputs/fakacl-v2/train.jsonl", "where": {"question_type": "generated"}, "weight": 2}
                                                            only the rows whose columns hold these values (a
                                                            share of the mix raised or lowered by listing them again)
    {"path": "outputs/asterisk-prompts", "weight": 3, "augment": 0.5}
                                                            half of the rows' copies heard augmented in stage C
                                                            (speed, room, noise, telephone band, gain), each copy
                                                            its own seeded draw: varied real speech from few clips

Options a source leaves out take the run's defaults (`--split`, `--text_column`, ... of train.py and evaluation.run).
Audio is never decoded here: rows keep the file's path or bytes, and soundfile decodes them later (no torchcodec).
"""

import dataclasses
import json
import logging
import os
import shlex
import zlib
from collections.abc import Callable

import datasets

logger = logging.getLogger("speechllm.data")

COLUMN_OPTIONS = {  # option → the project's column it fills
    "audio_column": "audio",
    "text_column": "transcript",
    "translation_column": "translation",
    "question_column": "question",
    "answer_column": "answer",
    "language_column": "tgt_lang",
}
MANIFEST_TYPES = {".jsonl": ("json", {}), ".json": ("json", {}), ".csv": ("csv", {}), ".tsv": ("csv", {"delimiter": "\t"})}
TEXT_CASES = ("as_is", "sentence")
SPEAKER_SHARES = ("all", "train", "dev")


class DataError(ValueError):
    """Data that cannot be used as given; the message names the source (and rows) and the fix. train.py and
    evaluation.run print it without a traceback."""


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One source of rows and how to read it."""

    path: str
    config: str | None = None  # the dataset's configuration (load_dataset's `name`)
    split: str = "train"
    audio_column: str | None = None  # None: the project's own name (audio, transcript, ...)
    text_column: str | None = None
    translation_column: str | None = None
    question_column: str | None = None
    answer_column: str | None = None
    language_column: str | None = None
    streaming: bool = False  # read the rows as they come (a Hub corpus too large to download whole), with max_rows
    max_rows: int | None = None  # the first N rows only
    weight: float = 1.0  # how many times each row counts in the mix (0.5: a seeded half of them)
    text_case: str = "as_is"  # "sentence": upper-case corpora (LibriSpeech, speechocean762) → "We call it bear"
    speakers: str = "all"  # "train" | "dev": the speakers outside / inside a seeded held-out share
    speaker_column: str = "speaker"
    dev_speaker_share: float = 0.08
    # Annotation files keyed by transcript (as this source writes it: after text_case): each transcribed clip becomes
    # one ST row per language it has there, and one SQA row per question. The builds: ANNOTATIONS below.
    translations: str | None = None
    questions: str | None = None
    # {column: value or [values]}: only the rows whose column (the project's name for it, annotations included) holds
    # one of them, e.g. {"question_type": "generated"} to list a build's LLM-written questions again with a weight.
    where: dict | None = None
    # The share of the rows (each copy a weight makes, drawn by itself) that training hears augmented, decoded and
    # changed as they are batched: synthesis/augmentation.py's chain, as fakACL's augmented clips. A training option
    # of the stage that reads audio every step (C, joint); stage A caches each clip's features once, evaluation
    # scores the recordings as they are.
    augment: float = 0.0
    # Constants for corpora of one task or one language pair whose rows do not say it (e.g. CoVoST 2's en_de
    # configuration: every row an ST row into German): the task and target language of every row.
    task: str | None = None
    target_language: str | None = None

    @property
    def name(self) -> str:
        """A short name for messages and row ids: the file or directory name (and the split for a dataset)."""
        base = os.path.splitext(os.path.basename(os.path.normpath(self.path)))[0]
        return base if self.is_manifest() else f"{base}:{self.split}" + (f":{self.speakers}" if self.speakers != "all" else "")

    def is_manifest(self) -> bool:
        return os.path.isfile(self.path)


def with_stand_in(spec, stand_ins: dict[str, str]):
    """The source `spec` with its path replaced where `stand_ins` names it (Hub id or path → a local stand-in), every
    other option kept: a recipe's data swapped for small local copies by a flag, so that its options are exercised."""
    if not stand_ins:
        return spec
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        spec = json.loads(spec)
    if isinstance(spec, dict):
        return {**spec, "path": stand_ins.get(spec.get("path"), spec.get("path"))}
    return stand_ins.get(spec, spec)


def parse_source(spec, **defaults) -> DataSource:
    """A path, Hub id or JSON object (or dict) → DataSource, the run's `defaults` filling what it leaves out."""
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as error:
            raise DataError(f"cannot read the data source {spec!r}: {error}; write it as a JSON object") from error
    options = {key: value for key, value in defaults.items() if value is not None}
    options.update(spec if isinstance(spec, dict) else {"path": spec})
    known = {field.name for field in dataclasses.fields(DataSource)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DataError(f"data source {spec!r}: unknown option(s) {', '.join(unknown)}; the options are {', '.join(sorted(known))}")
    if "path" not in options:
        raise DataError(f"data source {spec!r} has no path: give a manifest, a dataset directory or a Hub id as \"path\"")
    source = DataSource(**options)
    for option, allowed in (("text_case", TEXT_CASES), ("speakers", SPEAKER_SHARES)):
        if getattr(source, option) not in allowed:
            raise DataError(f"{source.path}: {option} must be one of {', '.join(allowed)} (got {getattr(source, option)!r})")
    if source.where is not None and not (isinstance(source.where, dict) and source.where):
        raise DataError(f"{source.path}: where must map columns to a value or a list of values, e.g. "
                        f"{{\"question_type\": \"generated\"}} (got {source.where!r})")
    if source.weight <= 0:
        raise DataError(f"{source.path}: weight must be positive (got {source.weight}); leave the source out instead")
    if not (isinstance(source.augment, (int, float)) and 0 <= source.augment <= 1):
        raise DataError(f"{source.path}: augment is the share of rows heard augmented, from 0 to 1 (got {source.augment!r})")
    return source


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------


def load_source(source: DataSource):
    """The source's rows as a Dataset (an IterableDataset when streaming), columns renamed to the project's."""
    if source.is_manifest():
        dataset = load_manifest(source.path)
    elif os.path.isdir(source.path) and is_saved_dataset(source.path):
        dataset = pick_split(read_or_explain(source.path, lambda: datasets.load_from_disk(source.path), "a saved dataset"), source)
    elif audiofolder_metadata(source) is not None:
        dataset = load_audiofolder(source)
    elif os.path.exists(source.path) or looks_like_hub_id(source.path):
        dataset = load_with_datasets(source)
    else:
        what = "manifest " if os.path.splitext(source.path)[1].lower() in MANIFEST_TYPES else ""
        raise DataError(f"{what}{source.path} does not exist: give a .jsonl/.csv/.tsv manifest, a dataset directory or a Hub id")
    if source.max_rows is not None:
        dataset = dataset.take(source.max_rows)
    dataset = map_columns(dataset, source)
    if source.translations or source.questions:
        dataset = annotated_rows(dataset, source)
    return keep_where(dataset, source) if source.where else dataset


def load_manifest(path: str) -> datasets.Dataset:
    extension = os.path.splitext(path)[1].lower()
    if extension not in MANIFEST_TYPES:
        raise DataError(f"{path}: unknown manifest type {extension!r}; use .jsonl, .csv, .tsv or a dataset directory")
    if os.path.getsize(path) == 0:
        raise DataError(f"manifest {path} has no rows: the file is empty")
    builder, options = MANIFEST_TYPES[extension]
    form = "one JSON object per line" if builder == "json" else f"a header line, then one row per line ({extension})"
    return read_or_explain(path, lambda: datasets.load_dataset(builder, data_files=path, split="train", **options), form)


def is_saved_dataset(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, name)) for name in ("state.json", "dataset_dict.json"))


def audiofolder_metadata(source: DataSource) -> str | None:
    """An audiofolder's metadata file (metadata.jsonl/.csv beside the audio), in the source's folder or in the folder
    of its split (DIR/train/metadata.jsonl), or None."""
    if not os.path.isdir(source.path):
        return None
    for folder in (source.path, os.path.join(source.path, source.split)):
        for name in ("metadata.jsonl", "metadata.csv"):
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    splits = sorted(entry.name for entry in os.scandir(source.path) if entry.is_dir() and audiofolder_metadata(
        DataSource(path=entry.path)))
    if splits:
        raise DataError(f"{source.path} has no split {source.split!r}: pass --split (or \"split\") with one of {splits}")
    return None


def load_audiofolder(source: DataSource) -> datasets.Dataset:
    """An audiofolder read as `datasets`' audiofolder reads it (each row's `file_name` beside its metadata file), but
    without encoding the audio (datasets' builder needs torchcodec for that, which does not build here)."""
    metadata = audiofolder_metadata(source)
    rows = load_manifest(metadata)
    if "file_name" not in rows.column_names:
        raise DataError(f"{metadata} has no file_name column: an audiofolder's metadata names each row's audio file there")
    folder = os.path.dirname(os.path.abspath(metadata))
    rows = rows.map(lambda row: {"audio": os.path.join(folder, row["file_name"])}, desc=f"reading {source.name}")
    return rows.remove_columns("file_name")


def looks_like_hub_id(path: str) -> bool:
    """"owner/name" or "name": not a relative path, not a manifest's file name."""
    parts = path.split("/")
    manifest_name = os.path.splitext(path)[1].lower() in MANIFEST_TYPES
    return 1 <= len(parts) <= 2 and all(parts) and not path.startswith((".", "~")) and not manifest_name


def load_with_datasets(source: DataSource):
    """An audiofolder, a folder of parquet/arrow/csv files or a Hub id: load_dataset, one split."""
    def load():
        return datasets.load_dataset(source.path, source.config, split=source.split, streaming=source.streaming)

    try:
        return load()
    except ValueError as error:
        if "split" in str(error).lower():  # 'Unknown split "dev". Should be one of ['train', 'test'].'
            raise DataError(f"{source.path} has no split {source.split!r} ({error}): pass --split (or \"split\") with one of them") from error
        raise DataError(f"cannot read {source.path}: {error}") from error
    except Exception as error:  # datasets wraps connection, builder and parser errors in many classes
        cause = error.__cause__ or error
        where = "" if os.path.exists(source.path) else (
            " (a Hub id: with no network, download it once elsewhere and give its local directory, or its Hub cache"
            " with HF_HUB_OFFLINE=1)"
        )
        raise DataError(f"cannot load {source.path}{where}: {type(cause).__name__}: {cause}") from error


def pick_split(dataset, source: DataSource):
    if isinstance(dataset, datasets.DatasetDict):
        if source.split not in dataset:
            raise DataError(f"{source.path} has no split {source.split!r}: pass --split (or \"split\") with one of {list(dataset)}")
        return dataset[source.split]
    return dataset


def read_or_explain(path: str, read, form: str):
    """Run `read`; a failure inside `datasets` becomes a DataError that names the path and the expected form."""
    try:
        return read()
    except Exception as error:  # datasets wraps parser errors in its own classes (DatasetGenerationError, ...)
        cause = error.__cause__ or error
        raise DataError(f"cannot read {path}: {type(cause).__name__}: {cause}; it must hold {form}") from error


# ---------------------------------------------------------------------------------------------------------------
# Columns, speakers and text
# ---------------------------------------------------------------------------------------------------------------


def map_columns(dataset, source: DataSource):
    """Rename the source's columns to the project's (audio, transcript, ...), undecoded audio, a held-out share of
    speakers, and the transcript's case; a DataError naming the columns there are for a column that is not."""
    columns = list(dataset.column_names or dataset.features or [])
    renames = {}
    for option, target in COLUMN_OPTIONS.items():
        wanted = getattr(source, option)
        if wanted is None or wanted == target:
            continue
        if wanted not in columns:
            flag = "--" + option
            raise DataError(f"{source.name}: no column {wanted!r} for {target} (its columns: {', '.join(columns)}): "
                            f"pass {flag} (or \"{option}\") with one of them")
        renames[wanted] = target
    for old, new in renames.items():
        if new in columns and new not in renames:  # the project's name is taken by a column the source does not mean
            dataset = dataset.remove_columns(new)
        dataset = dataset.rename_column(old, new)
    columns = list(dataset.column_names or dataset.features or [])
    if "audio" in columns and isinstance(dataset.features["audio"], datasets.Audio):
        dataset = dataset.cast_column("audio", datasets.Audio(decode=False))
    if source.speakers != "all":
        dataset = keep_speakers(dataset, source, columns)
    for column, value in (("task", source.task), ("tgt_lang", source.target_language)):
        if value is not None:
            dataset = dataset.remove_columns(column) if column in columns else dataset
            dataset = dataset.map(lambda row, column=column, value=value: {column: value})
    if source.text_case == "sentence" and "transcript" in columns:
        dataset = dataset.map(lambda row: {"transcript": sentence_case(row["transcript"])})
    return dataset


def keep_where(dataset, source: DataSource):
    """The rows whose columns hold the values `where` names; a DataError that names the columns there are, or the
    values there are, when it names a column the source lacks or matches no row."""
    columns = list(dataset.column_names or dataset.features or [])
    wanted = {column: values if isinstance(values, list) else [values] for column, values in source.where.items()}
    for column in wanted:
        if column not in columns:
            raise DataError(f"{source.name}: \"where\" names a column {column!r} it does not have (its columns: "
                            f"{', '.join(columns)})")
    kept = dataset.filter(lambda row: all(row[column] in values for column, values in wanted.items()))
    if isinstance(kept, datasets.Dataset) and len(kept) == 0:
        there = {column: sorted({str(value) for value in dataset[column]})[:10] for column in wanted}
        raise DataError(f"{source.name}: no row has {source.where} (the values there: {there})")
    return kept


def keep_speakers(dataset, source: DataSource, columns: list[str]):
    if source.speaker_column not in columns:
        raise DataError(f"{source.name}: speakers={source.speakers!r} needs a speaker column, and there is no "
                        f"{source.speaker_column!r} (its columns: {', '.join(columns)}): pass \"speaker_column\"")
    want_dev = source.speakers == "dev"
    return dataset.filter(lambda row: is_dev_speaker(row[source.speaker_column], source.dev_speaker_share) == want_dev)


def is_dev_speaker(speaker, share: float) -> bool:
    """A fixed, seeded share of the speakers (by a hash of the id): the same on every machine and every run."""
    return zlib.crc32(str(speaker).encode()) % 10_000 < share * 10_000


SENTENCE_CASE_WORDS = {"i": "I", "i'm": "I'm", "i've": "I've", "i'll": "I'll", "i'd": "I'd"}


def sentence_case(text: str | None) -> str | None:
    """"WE CALL IT BEAR" → "We call it bear": the case the LLM writes (its tokens for upper-case words are others)."""
    if not text:
        return text
    words = [SENTENCE_CASE_WORDS.get(word, word) for word in text.lower().split()]
    first = words[0]
    words[0] = first[:1].upper() + first[1:]
    return " ".join(words)


# ---------------------------------------------------------------------------------------------------------------
# Annotations: ST and SQA rows on a corpus's own clips
# ---------------------------------------------------------------------------------------------------------------


def translation_rows(entry: dict) -> list[dict]:
    """{"text", "de": ..., "zh": ...} (synthesis.translation) → one ST row's columns per language."""
    return [{"tgt_lang": language, "translation": text} for language, text in entry.items() if language != "text"]


def question_rows(entry: dict) -> list[dict]:
    """{"text", "questions": [{"question", "answer"}, ...]} (synthesis.questions) → one SQA row's columns per question."""
    return [{"question": pair["question"], "answer": pair["answer"], "question_type": "generated"} for pair in entry["questions"]]


@dataclasses.dataclass(frozen=True)
class Annotation:
    """A kind of annotation file: the task its rows train, how an entry becomes rows, and the command that builds it."""

    task: str
    rows_for: Callable[[dict], list[dict]]
    command: str


ANNOTATIONS = {  # DataSource option → what its file holds
    "translations": Annotation("st", translation_rows, "python -m synthesis.translation build --source SOURCE --output FILE"),
    "questions": Annotation("sqa", question_rows, "python -m synthesis.questions build --source SOURCE --output FILE"),
}
ANNOTATION_COLUMNS = ("task", "tgt_lang", "translation", "question", "answer", "question_type")


def read_annotations(path: str, source: DataSource, option: str) -> dict[str, dict]:
    """{transcript: entry} of an annotation file (JSON lines with "text"); a DataError naming the build command when
    the file is missing or unreadable."""
    build = build_command(source, option)
    if not os.path.isfile(path):
        raise DataError(f"{source.name}: the {option} file {path} does not exist: build it with `{build}`")
    entries = {}
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    entry = json.loads(line)
                    entries[entry["text"]] = entry
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise DataError(f"{path}, line {number}: not a {option} row ({error}); `{build}` writes them") from error
    return entries


def build_command(source: DataSource, option: str) -> str:
    """The command that fills the source's `option` file from its own transcripts."""
    command = ANNOTATIONS[option].command.replace("SOURCE", shlex.quote(transcript_spec(source)))
    return command.replace("FILE", getattr(source, option))


def transcript_spec(source: DataSource) -> str:
    """The source as JSON with just what decides its transcripts (where they are and how they are written), for the
    build commands: their files are keyed by the transcripts exactly as training reads them."""
    defaults = {field.name: field.default for field in dataclasses.fields(DataSource)}
    wanted = ("path", "config", "split", "text_column", "text_case")
    return json.dumps({name: getattr(source, name) for name in wanted if name == "path" or getattr(source, name) != defaults[name]})


def annotated_rows(dataset, source: DataSource):
    """Each transcribed clip as one row per annotation its transcript has (the clip's other columns kept); clips
    without any are left out and counted. A DataError when no clip has one: the file was built from other texts
    (another text_case, another corpus)."""
    files = {option: read_annotations(getattr(source, option), source, option) for option in ANNOTATIONS if getattr(source, option)}
    columns = list(dataset.column_names or dataset.features or [])
    if "transcript" not in columns:
        raise DataError(f"{source.name}: {' and '.join(files)} are looked up by transcript, and it has no transcript "
                        f"column (its columns: {', '.join(columns)}): pass \"text_column\"")

    def expand(batch: dict) -> dict:
        out = {name: [] for name in set(batch) | set(ANNOTATION_COLUMNS)}
        for index, transcript in enumerate(batch["transcript"]):
            for option, entries in files.items():
                annotation = ANNOTATIONS[option]
                for values in annotation.rows_for(entries[transcript]) if transcript in entries else []:
                    values["task"] = annotation.task
                    for name, column in out.items():
                        column.append(values[name] if name in values else batch[name][index] if name in batch else None)
        return out

    expanded = dataset.map(expand, batched=True, remove_columns=columns, desc=f"annotating {source.name}")
    if isinstance(expanded, datasets.IterableDataset):
        return expanded
    if len(expanded) == 0:
        sample = next(iter(dataset))["transcript"] if len(dataset) else None
        raise DataError(f"{source.name}: no transcript has an entry in {', '.join(getattr(source, o) for o in files)} "
                        f"(e.g. {sample!r}): build the file from this source as it is read here (its text_case), with "
                        + " / ".join(f"`{build_command(source, o)}`" for o in files))
    annotated = len(set(expanded["transcript"]))
    logger.warning("%s: %d %s rows from the %d of its %d transcripts that %s has", source.name, len(expanded),
                   "/".join(ANNOTATIONS[o].task for o in files), annotated, len(set(dataset["transcript"])),
                   " / ".join(getattr(source, o) for o in files))
    return expanded
