"""fakACL-style speech data: texts spoken by varied voices, with QA pairs, translations and augmentation.

    python -m synthesis.build_dataset --output_dir data/fakacl [--talks synthesis/talks.jsonl] [--seed 0] [--limit N]
    python -m synthesis.build_dataset --output_dir data/fakacl-v2 --version v2 --augment_fraction 0.5 \
        --translations synthesis/translations.jsonl --questions synthesis/questions.jsonl --unanswerable_fraction 0.2

v1 (the shipped default's data) speaks chunks of the LLM-written talks with Piper and espeak-ng voices. v2 speaks
every genre of synthesis.genres (talks, read prose, conversation, questions, numbers, commands; the counts of
synthesis.genres.V2_TEXTS or --texts_per_genre) with the shipped voices (synthesis.speak), gives a share of the
training clips an augmented copy, and adds the LLM's questions, unanswerable questions and ST rows from the caches.

Writes OUTPUT/audio/{train,test}/*.wav, the manifests OUTPUT/{train,test}.jsonl (ASR, SQA and ST rows usable by
train.py and evaluation.run), v2's OUTPUT/{train,test}_text.jsonl (MT and QA rows, stage B's data), the same rows as
`datasets` directories OUTPUT/{name}_dataset, and the time each phase took in OUTPUT/build_info.json. The test split
holds texts AND voices that the training split never has. Deterministic for a seed; resumable: a clip already on
disk is kept, and each clip is written under a temporary name first, so a killed run continues where it stopped.
"""

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import time
from pathlib import Path

import soundfile
from tqdm.auto import tqdm

from synthesis.genres import in_annotation_order, selection
from synthesis.jsonl import write_atomically
from synthesis.questions import read_questions
from synthesis.speak import FAMILY_SHARES, SAMPLING_RATE, VOICE_SETS, Speaker, pick_voices
from synthesis.speech_cache import SpeechCache
from synthesis.talks import DEFAULT_TALKS, STOPWORDS, chunk_talk, is_held_out, read_talks
from synthesis.translation import read_translations
from training.threads import add_threads_argument, use_threads

# ---------------------------------------------------------------------------------------------------------------
# Questions
# ---------------------------------------------------------------------------------------------------------------


def is_content_word(word: str) -> bool:
    return word.isalpha() and len(word) >= 4 and word.lower() not in STOPWORDS


def questions_for(chunk: dict, rng: random.Random) -> list[dict]:
    """Two extractive QA pairs per chunk, answerable only by listening: a cloze and a what-comes-next question;
    plus the talk's topic when the chunk names it."""
    text, pairs = chunk["text"], []
    sentences = [s.split() for s in re.split(r"(?<=[.!?]) ", text)]
    blanks = [(i, j) for i, words in enumerate(sentences) for j, w in enumerate(words) if is_content_word(w.strip(".,!?"))]
    if blanks:
        i, j = rng.choice(blanks)
        words = list(sentences[i])
        answer = words[j].strip(".,!?")
        words[j] = words[j].replace(answer, "___")
        pairs.append({"question": f"Which word fills the blank in what the speaker said: \"{' '.join(words)}\"", "answer": answer})
    words = text.split()
    positions = [i for i in range(len(words) - 1) if words[i + 1].strip(".,!?").lower() not in STOPWORDS]
    if positions:
        i = rng.choice(positions)
        pairs.append({"question": f"Which word does the speaker say right after \"{words[i].strip('.,!?')}\"?", "answer": words[i + 1].strip(".,!?")})
    if chunk.get("genre", "talk") == "talk" and chunk["topic"].lower() in text.lower():
        pairs.append({"question": TOPIC_QUESTION, "answer": chunk["topic"]})
    return pairs


NOT_SAID = "The speaker does not say."
TOPIC_QUESTION = "What is the topic of this talk?"


def add_question_types(clips: list[dict], unanswerable_fraction: float, seed: int, generated: dict | None = None) -> None:
    """Marks each question `extractive`, adds the LLM's questions about the clip's text (`generated`: text → pairs,
    synthesis.questions), and gives a share of the clips an `unanswerable` one, as the 2026 system builds them from
    mismatched audio/question pairs: a question about a text of another group in the same split (never a topic
    question, which any talk could answer), answered NOT_SAID."""
    for clip in clips:
        for pair in clip["questions"]:
            pair["question_type"] = "extractive"
        clip["questions"] += [pair | {"question_type": "generated"} for pair in (generated or {}).get(clip["text"], [])]
    for split in ("train", "test"):
        members = [c for c in clips if c["split"] == split]
        for clip in members:
            rng = random.Random(f"{seed}:unanswerable:{clip['id']}")
            if rng.random() >= unanswerable_fraction:
                continue
            donors = [c for c in members if c["group"] != clip["group"]]
            questions = [
                q for c in rng.sample(donors, min(5, len(donors))) for q in c["questions"]
                if q["question_type"] != "unanswerable" and q["question"] != TOPIC_QUESTION
            ]
            if questions:
                question = rng.choice(questions)["question"]
                clip["questions"].append({"question": question, "answer": NOT_SAID, "question_type": "unanswerable"})


# ---------------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------------


def group_of(chunk: dict) -> str:
    """What decides a chunk's split: its talk (v1 chunks), or its `group` (v2 texts)."""
    return chunk.get("group", chunk.get("talk"))


def plan(
    chunks: list[dict], seed: int, held_out_fraction: float, limit: int | None, voices_per_chunk: int = 1, version: str = "v1",
    unanswerable_fraction: float = 0.0, generated: dict | None = None, family_shares: dict[str, float] | None = None,
    engine_options: dict | None = None,
) -> list[dict]:
    """Every clip to make: its text, split, voice and questions, all fixed by the seed. A chunk's split is a hash of its
    group (its talk; for v2's other genres, its text). A training chunk is spoken by `voices_per_chunk` different
    voices (each its own clip); a held-out chunk by one held-out voice. v2 marks question types and adds the LLM's
    questions and unanswerable ones, drawn from the whole split before `limit` applies. `family_shares` overrides the
    version's share of clips each voice family speaks (e.g. only the fast Piper and espeak-ng voices)."""
    train_voices, test_voices = VOICE_SETS[version](engine_options)
    clips = []
    for chunk in chunks:
        group = group_of(chunk)
        split = "test" if is_held_out(group, held_out_fraction) else "train"
        rng = random.Random(f"{seed}:{chunk['id']}")
        shares = family_shares or FAMILY_SHARES.get(version)
        voices = pick_voices(rng, test_voices if split == "test" else train_voices, 1 if split == "test" else voices_per_chunk, shares)
        for number, voice in enumerate(voices):
            clip_id = chunk["id"] if number == 0 else f"{chunk['id']}-v{number}"
            clips.append({**chunk, "id": clip_id, "group": group, "split": split, "voice": voice, "questions": questions_for(chunk, rng)})
    if version != "v1":
        add_question_types(clips, unanswerable_fraction, seed, generated)
    return clips[:limit]


def synthesise(clips: list[dict], output_dir: str, from_the_end: bool = False, speech_cache: str | None = None,
               engine_options: dict | None = None) -> None:
    """Speaks every clip not on disk yet. With `speech_cache` (synthesis.speech_cache), a clip kept there is restored
    instead of spoken, and a newly spoken one is kept there (to be committed) and written as the cache gives it back."""
    speaker = Speaker(engine_options)
    cache = SpeechCache(speech_cache, SAMPLING_RATE) if speech_cache else None
    missing = [c for c in clips if not os.path.exists(clip_path(output_dir, c))]
    print(f"{len(clips) - len(missing)} of {len(clips)} clips already spoken, {len(missing)} to speak or restore")
    for clip in tqdm(missing[::-1] if from_the_end else missing, desc="speaking", unit="clip"):
        path = clip_path(output_dir, clip)
        if os.path.exists(path):  # spoken meanwhile by a build working from the other end
            continue
        samples = cache.load(clip["text"], clip["voice"].key) if cache else None
        if samples is None:
            samples = speaker.speak(clip["text"], clip["voice"])
            if cache:
                samples = cache.store(samples, clip["text"], clip["voice"].key)
        write_atomically(path, lambda temporary: soundfile.write(temporary, samples, SAMPLING_RATE))


def clip_path(output_dir: str, clip: dict) -> str:
    return os.path.join(output_dir, "audio", clip["split"], clip["id"] + ".wav")


def augment(clips: list[dict], output_dir: str, fraction: float, seed: int, from_the_end: bool = False) -> int:
    """Second pass, once every clip is spoken: a `fraction` of the training clips (chosen by the seed) get an
    augmented copy, {id}.aug.wav, with babble from other training clips; what was applied is kept beside it in
    {id}.aug.json. Test clips stay clean. Resumable like the first pass. Returns how many chosen clips are still
    being made by another build (0 when all are done)."""
    from synthesis.augmentation import Augmenter

    training = [c for c in clips if c["split"] == "train"]
    chosen = [c for c in training if random.Random(f"{seed}:augment:{c['id']}").random() < fraction]
    babble = [clip_path(output_dir, c) for c in sorted(training, key=lambda c: hashlib.sha1(c["id"].encode()).hexdigest())[:64]]
    missing = [c for c in chosen if not os.path.exists(augmented_path(output_dir, c, ".json"))]
    print(f"{len(chosen) - len(missing)} of {len(chosen)} augmented clips already made, {len(missing)} to make")
    augmenter = Augmenter(babble=babble) if missing else None
    for clip in tqdm(missing[::-1] if from_the_end else missing, desc="augmenting", unit="clip"):
        if os.path.exists(augmented_path(output_dir, clip, ".json")):  # made meanwhile by the other build
            continue
        samples, _ = soundfile.read(clip_path(output_dir, clip), dtype="float32")
        digest = int(hashlib.sha1(f"{seed}:{clip['id']}".encode()).hexdigest()[:8], 16)
        noisy, applied = augmenter(samples, seed=digest)
        write_atomically(augmented_path(output_dir, clip, ".wav"), lambda path: soundfile.write(path, noisy, SAMPLING_RATE))
        write_atomically(augmented_path(output_dir, clip, ".json"), lambda path: Path(path).write_text(json.dumps(applied)))
    unfinished = [c for c in chosen if not os.path.exists(augmented_path(output_dir, c, ".json"))]
    if unfinished:  # the other build is still writing them; it writes the manifests
        return len(unfinished)
    for clip in chosen:
        with open(augmented_path(output_dir, clip, ".json")) as handle:
            clip["augmentation"] = json.load(handle)
    return 0


def augmented_path(output_dir: str, clip: dict, extension: str) -> str:
    return os.path.join(output_dir, "audio", clip["split"], clip["id"] + ".aug" + extension)


def heard_copies(clip: dict, keep_clean: bool = False) -> list[tuple[str, bool]]:
    """(row-id suffix, augmented?) of each copy of the clip that the manifests list: an augmented copy replaces its
    clean original, or with `keep_clean` both are listed (twice the speech rows of an augmented clip, for free)."""
    if "augmentation" not in clip:
        return [("", False)]
    return [("", False), ("-aug", True)] if keep_clean else [("", True)]


def rows_for(clip: dict, translations: dict | None = None, extended: bool = False, augmented: bool | None = None,
             suffix: str = "") -> list[dict]:
    """The clip's speech rows: ASR, one SQA row per question, and (with translations) one ST row per language.
    `extended`: v2's columns (genre, hold-out group, augmentation, question type, target language, translation); v1
    manifests stay byte for byte the same without them. `augmented` (default: whether the clip has a copy) picks the
    copy the rows hear; `suffix` is added to their ids."""
    augmented = "augmentation" in clip if augmented is None else augmented
    name = clip["id"] + (".aug" if augmented else "") + ".wav"
    common = {"audio": os.path.join("audio", clip["split"], name), "transcript": clip["text"], "voice": clip["voice"].key}
    no_question = {"question": None, "answer": None}
    if not extended:
        common.update(talk=clip["talk"], topic=clip["topic"])
    else:
        common.update(genre=clip["genre"], group=clip["group"], topic=clip["topic"],
                      augmentation=clip["augmentation"] if augmented else [], tgt_lang=None, translation=None)
        no_question["question_type"] = None
    row_id = clip["id"] + suffix
    rows = [{"id": row_id, "task": "asr", **common, **no_question}]  # same columns in every row
    for i, pair in enumerate(clip["questions"]):
        pair = pair if extended else {key: pair[key] for key in ("question", "answer")}
        rows.append({"id": f"{row_id}-q{i}", "task": "sqa", **common, **pair})
    for language, text in sorted((translations or {}).get(clip["text"], {}).items()):
        if language != "text":
            rows.append({"id": f"{row_id}-st-{language}", "task": "st", **common, **no_question,
                         "tgt_lang": language, "translation": text})
    return rows


def text_rows(rows: list[dict]) -> list[dict]:
    """MT and QA rows (stage B's data): the text twins of the ST and SQA rows, one per distinct text."""
    twins, seen = [], set()
    for row in rows:
        task = {"st": "mt", "sqa": "qa"}.get(row["task"])
        key = (task, row["transcript"], row.get("tgt_lang"), row.get("question"))
        if task and key not in seen:
            seen.add(key)
            twins.append({**row, "id": row["id"] + "-text", "task": task, "audio": None})
    return twins


def write_manifest(rows: list[dict], output_dir: str, name: str) -> None:
    import datasets

    with open(os.path.join(output_dir, f"{name}.jsonl"), "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    absolute = [{**row, "audio": os.path.join(os.path.abspath(output_dir), row["audio"]) if row["audio"] else None} for row in rows]
    if absolute:
        datasets.Dataset.from_list(absolute).save_to_disk(os.path.join(output_dir, f"{name}_dataset"))


def write_splits(clips: list[dict], output_dir: str, translations: dict | None = None, extended: bool = False,
                 keep_clean: bool = False) -> dict[str, int]:
    """{split}.jsonl (speech rows) and, when extended, {split}_text.jsonl (MT/QA rows), each also as a `datasets`
    directory."""
    counts = {}
    for split in ("train", "test"):
        rows = [row for clip in clips if clip["split"] == split for suffix, augmented in heard_copies(clip, keep_clean)
                for row in rows_for(clip, translations, extended, augmented, suffix)]
        write_manifest(rows, output_dir, split)
        counts[split] = len(rows)
        if extended:
            twins = text_rows(rows)
            write_manifest(twins, output_dir, f"{split}_text")
            counts[f"{split}_text"] = len(twins)
    return counts


def build(output_dir, talks_path=DEFAULT_TALKS, seed=0, held_out_fraction=0.1, limit=None, voices_per_chunk=1,
          version="v1", augment_fraction=0.0, translations_path=None, unanswerable_fraction=0.0, texts=None,
          questions_path=None, from_the_end=False, speech_cache=None, keep_clean=False, family_shares=None,
          training_only=False, engine_options=None):
    """v1: the talks' chunks. v2: `texts` (default: synthesis.genres.selection(), every genre), with the LLM's
    questions from `questions_path` and ST rows from `translations_path` where those caches have the text."""
    extended = version != "v1"
    if not extended and (augment_fraction or translations_path or unanswerable_fraction or texts or questions_path):
        raise ValueError("genres, augmentation, translations and questions are v2 options: add --version v2")
    if extended:

        chunks = in_annotation_order(selection() if texts is None else texts, held_out_fraction)  # a killed build: every genre
        generated = read_questions(questions_path) if questions_path else None
    else:
        chunks, generated = [chunk for talk in read_talks(talks_path) for chunk in chunk_talk(talk)], None
    if training_only:  # an extra training build: its held-out texts would only be spoken to be left unused
        chunks = [chunk for chunk in chunks if not is_held_out(group_of(chunk), held_out_fraction)]
    clips = plan(chunks, seed, held_out_fraction, limit, voices_per_chunk, version, unanswerable_fraction, generated,
                 family_shares, engine_options)
    with timed(output_dir, "speaking"):
        synthesise(clips, output_dir, from_the_end, speech_cache, engine_options)
    unspoken = [c for c in clips if not os.path.exists(clip_path(output_dir, c))]
    if unspoken:
        print(f"{len(unspoken)} clips are still being spoken by another build: it augments and writes the manifests")
        return clips
    if augment_fraction > 0:
        with timed(output_dir, "augmenting"):
            unfinished = augment(clips, output_dir, augment_fraction, seed, from_the_end)
        if unfinished:
            print(f"{unfinished} augmented clips are still being made by another build: it writes the manifests")
            return clips
    translations = None
    if translations_path:

        translations = read_translations(translations_path)
    with timed(output_dir, "manifests"):
        counts = write_splits(clips, output_dir, translations, extended, keep_clean)
    print(f"wrote {output_dir}: {counts} rows from {len(clips)} clips")
    return clips


@contextlib.contextmanager
def timed(output_dir: str, phase: str):
    """Adds the phase's wall-clock seconds to OUTPUT/build_info.json, summed over resumed runs (the data card's
    build time)."""
    started = time.perf_counter()
    yield
    path = os.path.join(output_dir, "build_info.json")
    info = json.load(open(path)) if os.path.exists(path) else {"seconds": {}}
    info["seconds"][phase] = info["seconds"].get(phase, 0.0) + time.perf_counter() - started
    write_atomically(path, lambda temporary: Path(temporary).write_text(json.dumps(info, indent=1)))


def parse_mapping(text: str, value_type) -> dict:
    """"talk=1500,prose=1200" → {"talk": 1500, "prose": 1200}; a malformed item is an argparse error, not a traceback."""
    try:
        return {key: value_type(value) for key, value in (item.split("=") for item in text.split(","))}
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: expected name=number pairs separated by commas") from error


def parse_counts(text: str) -> dict[str, int]:
    return parse_mapping(text, int)


def parse_shares(text: str) -> dict[str, float]:
    """"piper=0.5,espeak=0.5" → voice-family shares (main checks them against the version's voices)."""
    return parse_mapping(text, float)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--talks", default=DEFAULT_TALKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held_out_fraction", type=float, default=0.1)
    parser.add_argument("--limit", type=int, help="only the first N clips: v2 takes its texts in annotation order (held-out texts, then every genre in turn), so any N is a balanced build")
    parser.add_argument("--voices_per_chunk", type=int, default=1, help="training chunks spoken by this many voices")
    parser.add_argument("--version", choices=sorted(VOICE_SETS), default="v1",
                        help="v1: the shipped default's data, byte for byte; v2: the shipped voices and the options below; "
                             "v2-seamless: v2 spoken by SeamlessM4T-v2's own speakers (the 2026 paper's voice)")
    parser.add_argument("--augment_fraction", type=float, default=0.0, help="share of training clips given an augmented copy")
    parser.add_argument("--translations", help="a translations cache (synthesis/translations.jsonl): adds ST rows and MT/QA manifests")
    parser.add_argument("--unanswerable_fraction", type=float, default=0.0, help="share of clips given a question it cannot answer")
    parser.add_argument("--questions", help="an LLM questions cache (synthesis/questions.jsonl): adds `generated` SQA rows")
    parser.add_argument("--from_the_end", action="store_true",
                        help="speak and augment from the last clip backwards: started beside a running build of the same "
                             "data, the two share the work (each skips what the other made); the last to finish writes the manifests")
    parser.add_argument("--texts_per_genre", type=parse_counts,
                        help="v2: texts of each genre, e.g. talk=1500,prose=1200 (default synthesis.genres.V2_TEXTS)")
    parser.add_argument("--speech_cache", help="restore clips kept in this directory instead of speaking them, and keep the "
                                                   "ones spoken (Opus; synthesis/spoken/v2 is the v2 build's, committed)")
    parser.add_argument("--keep_clean", action="store_true",
                        help="list an augmented clip's clean original too (its rows get the ids, the augmented copy's get -aug)")
    parser.add_argument("--family_shares", type=parse_shares,
                        help="v2: share of clips each voice family speaks, e.g. piper=0.5,espeak=0.5 (the fast voices "
                             "only: ~50x faster than Kokoro); default synthesis.speak.FAMILY_SHARES")
    parser.add_argument("--training_only", action="store_true",
                        help="speak the training split only (an extra training build beside one that has the test split)")
    parser.add_argument("--seamless_tts", help="the SeamlessM4T-v2 checkpoint that speaks --version v2-seamless (a Hub id "
                                               "or directory; default facebook/seamless-m4t-v2-large)")
    add_threads_argument(parser)
    args = parser.parse_args()
    use_threads(args.threads, "synthesis.build_dataset")
    engine_options = {"seamless": {"model_name_or_path": args.seamless_tts}} if args.seamless_tts else None
    if args.family_shares:
        voice_sets = VOICE_SETS[args.version](engine_options)
        known = {voice.engine for voices in voice_sets for voice in voices}
        if set(args.family_shares) - known:
            parser.error(f"--family_shares: unknown voice families {sorted(set(args.family_shares) - known)}; "
                         f"the {args.version} voices are of {sorted(known)}")
        for split, voices in zip(("training", "held-out"), voice_sets):
            families = sorted({voice.engine for voice in voices})
            if not any(args.family_shares.get(family, 0) > 0 for family in families):
                parser.error(f"--family_shares {args.family_shares}: the {split} voices are of the families {families}; "
                             "give at least one of them a positive share")
    texts = None
    if args.texts_per_genre:

        texts = selection(args.texts_per_genre)
    build(args.output_dir, args.talks, args.seed, args.held_out_fraction, args.limit, args.voices_per_chunk,
          args.version, args.augment_fraction, args.translations, args.unanswerable_fraction, texts, args.questions,
          args.from_the_end, args.speech_cache, args.keep_clean, args.family_shares, args.training_only, engine_options)


if __name__ == "__main__":
    main()
