"""Text genres: the checks on written text, spontaneous-speech fillers, Faker sentences, the committed caches, and the
hold-out rule that keeps test texts out of training."""

import collections
import random
import re

from synthesis.genres import (
    GENRES,
    MIN_LANGID_WORDS,
    add_disfluencies,
    annotation_order,
    clean_text,
    corpus,
    genre_path,
    held_out,
    normalise,
    number_rows,
    selection,
)
from synthesis.jsonl import read_rows
from synthesis.questions import parse, problem


def test_clean_text_keeps_whole_sentences_of_plain_english_within_the_limits():
    assert clean_text('"Play some new songs"', "command") == ("Play some new songs.", "")
    assert clean_text("Sure, here is a command: play music.", "command") == ("", "preamble")
    assert clean_text('Sure! "Let\'s play a board game tomorrow, okay?"', "question") == ("Let's play a board game tomorrow, okay?", "")
    assert clean_text('"May I know if she works from home?', "question") == ("May I know if she works from home?", "")
    assert clean_text('Manager: "Hello! How are you today?" Driver: "Fine."', "conversation") == ("", "dialogue script")
    assert clean_text("Turn it up 🎵 now.", "command") == ("", "characters")
    assert clean_text("play_music() {now}", "command") == ("", "characters")
    cut = "Once upon a time, there was a girl. She lost her umbrella. From that day on, Lily"
    assert clean_text(cut, "prose") == ("Once upon a time, there was a girl. She lost her umbrella.", "")
    long = "One two three four five six seven eight nine ten. " * 4
    assert clean_text(long, "prose")[0] == " ".join(["One two three four five six seven eight nine ten."] * 3)
    assert clean_text("Hi.", "conversation") == ("", "too short")
    assert clean_text("José Müller paid €12 for lunch.", "numbers") == ("José Müller paid €12 for lunch.", "")


def test_disfluencies_are_seeded_keep_every_word_and_leave_spoken_text_alone():
    text = "I think we should go to the beach tomorrow. The weather looks great, and the kids would love it."
    outputs = [add_disfluencies(text, random.Random(seed)) for seed in range(20)]
    assert outputs == [add_disfluencies(text, random.Random(seed)) for seed in range(20)]
    assert len(set(outputs)) > 10
    fillers = re.compile(r"\b(uh|um|you know|i mean|like|well|so)\b,?", re.I)
    for output in outputs:
        assert output != text and fillers.search(output)
        words = normalise(fillers.sub(" ", output)).split()
        original = iter(words)
        assert all(word in original for word in normalise(text).split())  # the text's words, in order, nothing lost
    assert sum(bool(re.search(r"\b(\w+ \w+), \1\b", output, re.I)) for output in outputs) >= 5  # false starts
    spoken = "Uh, I was going to call you."
    assert add_disfluencies(spoken, random.Random(0)) == spoken


def test_number_sentences_are_deterministic_and_cover_every_template():
    first, again = number_rows(60), number_rows(60)
    assert first == again
    assert len({row["topic"] for row in first}) == 25
    assert all(re.search(r"\d", row["text"]) or "o'clock" in row["text"] for row in first if row["topic"].count("{") > 1)
    assert not [row for row in first if "dropped" in row]


def test_committed_caches_hold_checked_english_text_of_their_genre():
    import langid

    langid.set_languages(["en", "de", "it", "zh", "fr", "es"])
    for genre in ("prose", "conversation", "question", "command", "numbers"):
        rows = read_rows(genre_path(genre))
        assert rows, genre
        assert len({row["id"] for row in rows}) == len(rows)
        kept = [row for row in rows if "text" in row]
        assert all(row["genre"] == genre and ("dropped" in row) != ("text" in row) for row in rows)
        assert len(kept) >= 0.5 * len(rows), genre
        for row in kept:
            assert clean_text(row["text"], genre) == (row["text"], ""), row
        long_enough = [row for row in kept if len(row["text"].split()) >= MIN_LANGID_WORDS]  # langid guesses on less
        sample = random.Random(0).sample(long_enough, min(50, len(long_enough)))
        assert sum(langid.classify(row["text"])[0] == "en" for row in sample) >= 0.9 * len(sample), genre
    sources = collections.Counter(row["source"].split(":")[0] for row in read_rows(genre_path("prose")) if "text" in row)
    assert sources["fortunes"] > 1000  # real writers' quotations, not only LLM prose


def test_the_corpus_is_deduplicated_and_every_group_stays_in_one_split():
    texts = corpus()
    assert {row["genre"] for row in texts} == set(GENRES)
    assert len({normalise(row["text"]) for row in texts}) == len(texts)
    splits = collections.defaultdict(set)
    for row in texts:
        splits[row["group"]].add(held_out(row))
    assert all(len(split) == 1 for split in splits.values())  # a talk's chunks never straddle the splits
    share = sum(map(held_out, texts)) / len(texts)
    assert 0.07 < share < 0.13


def test_selection_and_annotation_order_put_held_out_texts_first_then_each_genre_in_turn():
    texts = corpus()
    chosen = selection({"talk": 300, "prose": 200, "command": 50}, texts)
    assert chosen == selection({"talk": 300, "prose": 200, "command": 50}, list(reversed(texts)))  # order-free
    assert collections.Counter(row["genre"] for row in chosen) == {"talk": 300, "prose": 200, "command": 50}
    order = annotation_order(chosen)
    held = {row["text"] for row in chosen if held_out(row)}
    assert held and set(order[: len(held)]) == held
    genre_of = {row["text"]: row["genre"] for row in chosen}
    assert [genre_of[text] for text in order[len(held) : len(held) + 3]] == ["talk", "prose", "command"]


def test_questions_are_parsed_and_kept_only_when_the_text_says_the_answer():
    reply = "Q1: Where did the sister move last year?\nA1: Chicago.\nQ2: Where is her new job?\nA2: at the hospital"
    pairs = parse(reply)
    assert pairs == [{"question": "Where did the sister move last year?", "answer": "Chicago"},
                     {"question": "Where is her new job?", "answer": "at the hospital"}]
    text = "My sister moved to Chicago last year, and she loves her new job at the hospital."
    assert [problem(pair, text) for pair in pairs] == ["", ""]
    assert problem({"question": "Where did she move?", "answer": "Boston"}, text) == "answer not said"
    assert problem({"question": "Who moved last year?", "answer": "she"}, text) == "answer is a function word"
    assert problem({"question": "Did she move to Chicago?", "answer": "Chicago"}, text) == "question gives the answer"
    assert problem({"question": "Tell me", "answer": "Chicago"}, text) == "not a question"
    assert problem({"question": "What does she love?", "answer": "her new job at the hospital in the city"}, text) == "answer too long"


def test_annotation_fills_both_caches_block_by_block_and_resumes(tmp_path, part_cache, capsys):
    from synthesis.annotate import annotate
    from synthesis.llm import load_writer
    from synthesis.questions import read_questions
    from synthesis.translation import LANGUAGES, read_translations

    texts = ["My sister moved to Chicago last year, and she loves her new job at the hospital.", "Turn off the lights in the kitchen.",
             "The train to Boston leaves at seven."]
    asked, translated = str(tmp_path / "questions.jsonl"), str(tmp_path / "translations.jsonl")
    writer = load_writer("qwen2.5-coder-0.5b-instruct")
    annotate(writer, texts[:1], 1, asked, translated)
    annotate(writer, texts, 1, asked, translated, translate=2)  # questions for all three, translations for two
    assert "1 of 3 texts annotated (2 to be translated), 2 to do" in capsys.readouterr().out
    questions = read_questions(asked)
    assert list(questions) == texts and list(read_translations(translated)) == texts[:2]
    for text, pairs in questions.items():  # whatever the LLM asked, only answers said in the text were kept
        assert all(not problem(pair, text) for pair in pairs)
    assert any(language in row for row in read_translations(translated).values() for language in LANGUAGES)
