"""The data card of a fakACL v2 build: what it holds, measured from its manifests, audio and the caches it was built
from, as Markdown tables (synthesis/DATA.md is this command's output plus the commands that made the data).

    python -m synthesis.data_card [--data_dir data/fakacl-v2] [--output FILE]
"""

import argparse
import collections
import json
import os

import soundfile
from tqdm.auto import tqdm

from synthesis.genres import V2_TEXTS, selection, stats
from synthesis.jsonl import read_rows
from synthesis.questions import QUESTIONS
from synthesis.translation import LANGUAGES, TRANSLATIONS, dropped_path, read_translations


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f}"


def clip_seconds(data_dir: str, rows: list[dict]) -> dict[str, float]:
    """Duration of each ASR row's audio (one row per clip)."""
    return {row["id"]: soundfile.info(os.path.join(data_dir, row["audio"])).duration
            for row in tqdm(rows, desc="measuring clips", unit="clip")}


def speech_section(data_dir: str) -> str:
    out = []
    for split in ("train", "test"):
        rows = read_rows(os.path.join(data_dir, f"{split}.jsonl"))
        clips = [row for row in rows if row["task"] == "asr"]
        seconds = clip_seconds(data_dir, clips)
        by_family, speakers = collections.defaultdict(float), collections.defaultdict(set)
        for row in clips:
            engine, name = row["voice"].split(":")[:2]
            by_family[engine] += seconds[row["id"]]
            speakers[engine].add(name if engine != "espeak" else row["voice"])
        by_genre = collections.defaultdict(lambda: [0, 0.0])
        for row in clips:
            by_genre[row["genre"]][0] += 1
            by_genre[row["genre"]][1] += seconds[row["id"]]
        tasks = collections.Counter(row["task"] if row["task"] != "st" else f"st {row['tgt_lang']}" for row in rows)
        questions = collections.Counter(row["question_type"] for row in rows if row["task"] == "sqa")
        augmented = sum(row["audio"].endswith(".aug.wav") for row in clips)  # an augmented copy (its stages drawn at random)
        out += [
            f"### {split}: {len(clips)} clips, {hours(sum(seconds.values()))} h, {augmented} augmented",
            "",
            table(["voice family", "speakers", "hours"], [[f, len(speakers[f]), hours(s)] for f, s in sorted(by_family.items())]),
            "",
            table(["genre", "clips", "hours"], [[g, n, hours(s)] for g, (n, s) in sorted(by_genre.items())]),
            "",
            table(["task", "rows"], sorted(tasks.items())) + "\n\n" + table(["question type", "questions"], sorted(questions.items())),
            "",
        ]
        text_rows = read_rows(os.path.join(data_dir, f"{split}_text.jsonl"))
        if text_rows:
            mt_qa = collections.Counter(row["task"] if row["task"] != "mt" else f"mt {row['tgt_lang']}" for row in text_rows)
            out += [table(["text task", "rows"], sorted(mt_qa.items())), ""]
    return "\n".join(out)


def cache_section(texts: list[str]) -> str:
    """Translations and LLM questions of the build's texts: kept, and why the others were dropped."""

    wanted = set(texts)
    translated = {text: row for text, row in read_translations(TRANSLATIONS).items() if text in wanted}
    drops = collections.Counter((row["language"], row["reason"]) for row in read_rows(dropped_path(TRANSLATIONS)) if row["text"] in wanted)
    rows = [[language, len(translated), sum(language in row for row in translated.values()),
             ", ".join(f"{reason} {n}" for (lang, reason), n in drops.most_common() if lang == language) or "-"]
            for language in LANGUAGES]
    asked = [row for row in read_rows(QUESTIONS) if row["text"] in wanted]
    reasons = collections.Counter(pair["reason"] for row in asked for pair in row["dropped"])
    return "\n".join([
        f"Translations: {len(translated)} of the build's {len(wanted)} texts done so far.", "",
        table(["language", "texts translated", "kept", "dropped (why)"], rows), "",
        f"LLM questions: {len(asked)} of {len(wanted)} texts asked about, {sum(len(row['questions']) for row in asked)} questions kept; "
        f"dropped: {', '.join(f'{reason} {n}' for reason, n in reasons.most_common()) or '-'}.",
    ])


def genre_section() -> str:

    report = stats()
    chosen = {genre: min(V2_TEXTS.get(genre, 0), r["texts"]) for genre, r in report.items()}
    total = sum(chosen.values())
    rows = [[genre, r["texts"], r["held_out"], r["words"], chosen[genre], f"{100 * chosen[genre] / total:.0f} %",
             ", ".join(f"{k} {v}" for k, v in r["sources"].items()),
             ", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "-"] for genre, r in report.items()]
    return table(["genre", "texts", "held out", "words", "in a v2 build", "share of it", "sources", "dropped (why)"], rows)


def card(data_dir: str | None) -> str:
    """The tables; without a built `data_dir`, those of the texts and caches only (the v2 selection's texts)."""
    sections = ["## Texts by genre (the whole corpus)", genre_section()]
    built = data_dir and os.path.exists(os.path.join(data_dir, "train.jsonl"))
    if built:
        texts = [row["transcript"] for split in ("train", "test") for row in read_rows(os.path.join(data_dir, f"{split}.jsonl")) if row["task"] == "asr"]
        sections += [f"## Speech ({data_dir})", speech_section(data_dir)]
    else:

        texts = [row["text"] for row in selection()]
    sections += ["## Translations and questions", cache_section(texts)]
    info_path = os.path.join(data_dir, "build_info.json") if built else ""
    if os.path.exists(info_path):
        seconds = json.load(open(info_path))["seconds"]
        sections += ["## Build time", table(["phase", "minutes (wall clock, 2 cores)"], [[k, f"{v / 60:.0f}"] for k, v in seconds.items()])]
    return "\n\n".join(sections) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="a v2 build (without one: the texts and caches only)")
    parser.add_argument("--output", help="write the tables here (default: print them)")
    args = parser.parse_args()
    text = card(args.data_dir)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
