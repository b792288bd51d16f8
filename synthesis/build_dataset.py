"""fakACL-style speech data: the LLM-written talks, segmented into chunks, spoken by varied voices, with QA pairs.

    python -m synthesis.build_dataset --output_dir data/fakacl [--talks synthesis/talks.jsonl] [--seed 0] [--limit N]
    python -m synthesis.build_dataset --output_dir data/fakacl-v2 --voice_set v2 --augment_fraction 0.5 \
        --translations synthesis/translations.jsonl        # fakACL v2 (in progress): shipped voices, augmentation, ST

Writes OUTPUT/audio/{train,test}/*.wav, the manifests OUTPUT/{train,test}.jsonl (ASR and SQA rows usable by train.py
and evaluation.run) and the same rows as `datasets` directories OUTPUT/{train,test}_dataset. The test split holds
talks AND voices that the training split never has. Deterministic for a seed; resumable: a clip already on disk is
kept, and each clip is written under a temporary name first, so a killed run continues where it stopped.
"""

import argparse
import hashlib
import json
import os
import random
import re
import sys

import soundfile
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from synthesis.speak import SAMPLING_RATE, VOICE_SETS, Speaker  # noqa: E402
from synthesis.write_talks import clean_sentences  # noqa: E402

DEFAULT_TALKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "talks.jsonl")
MAX_CHUNK_WORDS = 30
STOPWORDS = set(
    "the a an and or but of to in on for with by from as at is are was were be been being this that these those it its "
    "we our you your they their there which what who how can will would could should may might more most such also "
    "into than then them not only very have has had".split()
)


def read_talks(path: str) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def chunk_talk(talk: dict) -> list[dict]:
    """Consecutive sentences grouped into chunks of at most MAX_CHUNK_WORDS words (one sentence at least)."""
    chunks, current = [], []
    for sentence in clean_sentences(talk["raw"]):
        if current and len(" ".join(current + [sentence]).split()) > MAX_CHUNK_WORDS:
            chunks.append(current)
            current = []
        current.append(sentence)
    if current:
        chunks.append(current)
    return [{"id": f"{talk['id']}-{i}", "talk": talk["id"], "topic": talk["topic"], "text": " ".join(c)} for i, c in enumerate(chunks)]


def is_held_out(talk_id: str, fraction: float) -> bool:
    digest = int(hashlib.sha1(talk_id.encode()).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < fraction


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
    if chunk["topic"].lower() in text.lower():
        pairs.append({"question": "What is the topic of this talk?", "answer": chunk["topic"]})
    return pairs


# ---------------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------------


def plan(
    talks: list[dict], seed: int, held_out_fraction: float, limit: int | None, voices_per_chunk: int = 1, voice_set: str = "v1"
) -> list[dict]:
    """Every clip to make: its chunk, split, voice and questions, all fixed by the seed. A training chunk is spoken
    by `voices_per_chunk` different voices (each its own clip); a held-out chunk by one held-out voice."""
    train_voices, test_voices = VOICE_SETS[voice_set]()
    clips = []
    for talk in talks:
        split = "test" if is_held_out(talk["id"], held_out_fraction) else "train"
        for chunk in chunk_talk(talk):
            rng = random.Random(f"{seed}:{chunk['id']}")
            voices = rng.sample(test_voices, 1) if split == "test" else rng.sample(train_voices, voices_per_chunk)
            for number, voice in enumerate(voices):
                clip_id = chunk["id"] if number == 0 else f"{chunk['id']}-v{number}"
                clips.append({**chunk, "id": clip_id, "split": split, "voice": voice, "questions": questions_for(chunk, rng)})
    return clips[:limit]


def synthesise(clips: list[dict], output_dir: str) -> None:
    speaker = Speaker()
    missing = [c for c in clips if not os.path.exists(clip_path(output_dir, c))]
    print(f"{len(clips) - len(missing)} of {len(clips)} clips already spoken, {len(missing)} to speak")
    for clip in tqdm(missing, desc="speaking", unit="clip"):
        path = clip_path(output_dir, clip)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        samples = speaker.speak(clip["text"], clip["voice"])
        temporary = path + ".partial.wav"
        soundfile.write(temporary, samples, SAMPLING_RATE)
        os.replace(temporary, path)


def clip_path(output_dir: str, clip: dict) -> str:
    return os.path.join(output_dir, "audio", clip["split"], clip["id"] + ".wav")


def augment(clips: list[dict], output_dir: str, fraction: float, seed: int) -> None:
    """Second pass, once every clip is spoken: a `fraction` of the training clips (chosen by the seed) get an
    augmented copy, {id}.aug.wav, with babble from other training clips; what was applied is kept beside it in
    {id}.aug.json. Test clips stay clean. Resumable like the first pass."""
    from synthesis.augmentation import Augmenter

    training = [c for c in clips if c["split"] == "train"]
    chosen = [c for c in training if random.Random(f"{seed}:augment:{c['id']}").random() < fraction]
    babble = [clip_path(output_dir, c) for c in sorted(training, key=lambda c: hashlib.sha1(c["id"].encode()).hexdigest())[:64]]
    missing = [c for c in chosen if not os.path.exists(augmented_path(output_dir, c, ".json"))]
    print(f"{len(chosen) - len(missing)} of {len(chosen)} augmented clips already made, {len(missing)} to make")
    augmenter = Augmenter(babble=babble) if missing else None
    for clip in tqdm(missing, desc="augmenting", unit="clip"):
        samples, _ = soundfile.read(clip_path(output_dir, clip), dtype="float32")
        digest = int(hashlib.sha1(f"{seed}:{clip['id']}".encode()).hexdigest()[:8], 16)
        noisy, applied = augmenter(samples, seed=digest)
        write_atomically(augmented_path(output_dir, clip, ".wav"), lambda path: soundfile.write(path, noisy, SAMPLING_RATE, format="WAV"))
        write_atomically(augmented_path(output_dir, clip, ".json"), lambda path: open(path, "w").write(json.dumps(applied)))
    for clip in chosen:
        with open(augmented_path(output_dir, clip, ".json")) as handle:
            clip["augmentation"] = json.load(handle)


def augmented_path(output_dir: str, clip: dict, extension: str) -> str:
    return os.path.join(output_dir, "audio", clip["split"], clip["id"] + ".aug" + extension)


def write_atomically(path: str, write) -> None:
    temporary = path + ".partial"
    write(temporary)
    os.replace(temporary, path)


def rows_for(clip: dict, translations: dict | None = None) -> list[dict]:
    """The clip's speech rows: ASR, one SQA row per question, and (with translations) one ST row per language."""
    name = clip["id"] + (".aug" if "augmentation" in clip else "") + ".wav"
    common = {"audio": os.path.join("audio", clip["split"], name), "transcript": clip["text"], "voice": clip["voice"].key,
              "talk": clip["talk"], "topic": clip["topic"]}
    if translations is not None:  # the v2 columns; without them a v1 build's manifests stay byte for byte the same
        common.update(augmentation=clip.get("augmentation", []), tgt_lang=None, translation=None)
    rows = [{"id": clip["id"], "task": "asr", **common, "question": None, "answer": None}]  # same columns in every row
    rows += [{"id": f"{clip['id']}-q{i}", "task": "sqa", **common, **pair} for i, pair in enumerate(clip["questions"])]
    for language, text in sorted((translations or {}).get(clip["text"], {}).items()):
        if language != "text":
            rows.append({"id": f"{clip['id']}-st-{language}", "task": "st", **common, "question": None, "answer": None,
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


def write_splits(clips: list[dict], output_dir: str, translations: dict | None = None) -> dict[str, int]:
    """{split}.jsonl (speech rows) and, with translations, {split}_text.jsonl (MT/QA rows), each also as a
    `datasets` directory."""
    counts = {}
    for split in ("train", "test"):
        rows = [row for clip in clips if clip["split"] == split for row in rows_for(clip, translations)]
        write_manifest(rows, output_dir, split)
        counts[split] = len(rows)
        if translations is not None:
            twins = text_rows(rows)
            write_manifest(twins, output_dir, f"{split}_text")
            counts[f"{split}_text"] = len(twins)
    return counts


def build(output_dir, talks_path=DEFAULT_TALKS, seed=0, held_out_fraction=0.1, limit=None, voices_per_chunk=1,
          voice_set="v1", augment_fraction=0.0, translations_path=None):
    clips = plan(read_talks(talks_path), seed, held_out_fraction, limit, voices_per_chunk, voice_set)
    synthesise(clips, output_dir)
    if augment_fraction > 0:
        augment(clips, output_dir, augment_fraction, seed)
    translations = None
    if translations_path:
        from synthesis.translation import read_translations

        translations = read_translations(translations_path)
    counts = write_splits(clips, output_dir, translations)
    print(f"wrote {output_dir}: {counts} rows from {len(clips)} clips")
    return clips


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--talks", default=DEFAULT_TALKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--held_out_fraction", type=float, default=0.1)
    parser.add_argument("--limit", type=int, help="only the first N clips (a quick look)")
    parser.add_argument("--voices_per_chunk", type=int, default=1, help="training chunks spoken by this many voices")
    parser.add_argument("--voice_set", choices=sorted(VOICE_SETS), default="v1", help="v1: the default's data; v2: the shipped voices")
    parser.add_argument("--augment_fraction", type=float, default=0.0, help="share of training clips given an augmented copy")
    parser.add_argument("--translations", help="a translations cache (synthesis/translations.jsonl): adds ST rows and MT/QA manifests")
    args = parser.parse_args()
    build(args.output_dir, args.talks, args.seed, args.held_out_fraction, args.limit, args.voices_per_chunk,
          args.voice_set, args.augment_fraction, args.translations)


if __name__ == "__main__":
    main()
