"""Text beyond NLP talks: what real people say, by genre. Each written genre is a committed cache that builds read.

    python -m synthesis.genres write [--genres conversation question command prose numbers] [--writer NAME]
    python -m synthesis.genres stats                          # texts per genre: kept, dropped and why, held out

The genres:
- talk: chunks of the LLM-written talks (synthesis/talks.jsonl), fakACL's text;
- prose: read prose: quotations of real writers from Debian's `fortunes` package (public text), and passages an LLM
  writes as if from a novel, a news report, a travel guide, ...;
- conversation: an LLM's casual speech about everyday things, given fillers ("uh", "um", "you know") and false starts
  by a seeded rule, since the LLM seldom writes them itself;
- question: questions and requests people ask, written by the LLM;
- numbers: numbers, dates, times, prices, names and places: sentence templates filled by Faker;
- command: short spoken commands, written by the LLM.
A written genre lives in synthesis/texts/{genre}.jsonl, one row per request: {"id", "genre", "source", "text"} or, for
a reply that failed the checks, {"id", "genre", "source", "dropped": reason}. Rows are appended as they come, so a
killed run resumes where it stopped. `corpus()` reads every genre, deduplicated, each text with the `group` that the
hold-out rule hashes (a talk for talk chunks, the text itself otherwise).
"""

import argparse
import collections
import glob
import hashlib
import itertools
import json
import os
import random
import re

from tqdm.auto import tqdm

from synthesis.endpoint import stops_with_one_line
from synthesis.jsonl import append_rows, read_rows, replace_rows
from synthesis.llm import DEFAULT_WRITER, add_writer_options, writer_from_args
from synthesis.talks import DEFAULT_TALKS, chunk_talk, is_held_out, read_talks

TEXTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "texts")
FORTUNES_DIR = "/usr/share/games/fortunes"
HELD_OUT_FRACTION = 0.1  # as synthesis.build_dataset's default split
# Fortune files of plain prose (no code, no dialogue scripts, no jokes at groups of people).
FORTUNE_FILES = (
    "art", "cookie", "education", "food", "fortunes", "humorists", "kids", "law", "literature", "love", "magic",
    "medicine", "miscellaneous", "news", "people", "pets", "platitudes", "politics", "pratchett", "science",
    "songs-poems", "sports", "tao", "wisdom", "work",
)

EVERYDAY_TOPICS = (
    "weekend plans", "cooking dinner", "a trip to the seaside", "the weather", "a football match", "gardening",
    "moving to a new flat", "a job interview", "a visit to the doctor", "the children's school", "a concert",
    "a film they saw", "grocery shopping", "a broken car", "their dog", "a summer holiday", "saving money",
    "noisy neighbours", "a new phone", "a birthday party", "a book they are reading", "going to the gym",
    "a new restaurant", "the bus being late", "a family dinner", "fixing the kitchen sink", "a camping trip",
    "learning to drive", "a wedding", "working from home", "a museum visit", "a power cut", "a cold", "their commute",
    "a video game", "a bake sale", "a hiking trail", "the local library", "a lost wallet", "a train journey",
    "buying a bicycle", "a science documentary", "an old friend", "a thunderstorm", "a tennis lesson", "the rent",
    "a volunteering day", "a farmers' market", "learning a language", "a night shift", "painting the house",
    "a flight delay", "a cat that ran away", "a school play", "a new hobby", "a coffee machine", "the news",
)
PERSONAS = (
    "a nurse", "a student", "a retired teacher", "a taxi driver", "a shop owner", "a teenager", "a farmer",
    "a software developer", "a young parent", "a chef", "a bus driver", "a grandmother", "a plumber", "a musician",
    "a police officer", "an accountant", "a football coach", "a pharmacist", "a hairdresser", "a scientist",
    "a librarian", "a builder", "a waiter", "a pilot", "a journalist", "a gardener", "a mechanic", "a vet",
    "a sales manager", "a primary school pupil",
)
LISTENERS = (
    "a friend", "a neighbour", "a colleague", "their sister", "a shop assistant", "a receptionist", "their doctor",
    "a stranger at the bus stop", "their manager", "a customer", "their flatmate", "a teacher",
)
PROSE_KINDS = (
    "a novel", "a children's story", "a news report", "an encyclopedia article", "a travel guide", "a history book",
    "a cookbook", "a nature documentary", "a biography", "a science magazine", "a personal letter", "a sports report",
    "a museum guide", "a short story", "a local newspaper", "a gardening book",
)
COMMAND_TARGETS = (
    ("a voice assistant on a phone", ("calls", "messages", "alarms", "the calendar", "reminders", "directions")),
    ("a smart speaker at home", ("music", "the lights", "timers", "the heating", "the news", "shopping lists")),
    ("a car's voice control", ("navigation", "the radio", "phone calls", "the air conditioning", "petrol stations")),
    ("a television", ("channels", "the volume", "films", "subtitles", "recordings")),
    ("a person in the room", ("the door", "the window", "dinner", "the dishes", "the children", "a parcel")),
    ("a dog", ("sitting", "walking", "staying", "fetching a ball")),
)
FILLERS = ("uh", "um", "you know", "I mean", "like", "well", "so")

# (first words a request asks for, most words kept) by genre; a reply is cut to its whole sentences within the limit.
WORD_LIMITS = {"conversation": (8, 32), "question": (4, 30), "command": (2, 12), "prose": (10, 30), "numbers": (4, 30)}
PUNCTUATION = set(" .,!?;:'\"$%&()/-–—’‘“”€£")
SCRIPT = re.compile(r"(^|[.!?\"] )[A-Z]\w*( [A-Z]\w*)?: \"")  # 'Manager: "Hello!" Driver: "Hi."'
QUOTED = re.compile(r"[\"“]([^\"“”]+)[\"”]")
PREAMBLE = re.compile(r"^(sure|certainly|of course|here('s| is| are)|as an ai|i'm sorry|i am sorry|okay, here)\b", re.I)


# ---------------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """The deduplication key: lower case letters and digits only."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def sentences_of(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def clean_text(text: str, genre: str) -> tuple[str, str]:
    """(the text as spoken, "") or ("", why it is dropped): one paragraph of plain English, whole sentences, within the
    genre's word limits."""
    text = " ".join(text.replace("*", "").split()).strip(" -")
    if len(text) >= 2 and text[0] in "\"“" and text[-1] in "\"”":
        text = text[1:-1].strip()
    if PREAMBLE.match(text):  # 'Sure! "Hey, let's play tomorrow."': the quoted words are the answer, when there are any
        quoted = [span for span in QUOTED.findall(text) if len(span.split()) >= 4]
        if not quoted:
            return "", "preamble"
        text = quoted[0].strip()  # a quoted span holds no quotes: nothing more to strip
    if text.count('"') % 2:  # an opening quote whose end was cut off, or a closing one without its start
        text = text.strip('"').strip()
    if text.count('"') % 2:
        text = text.replace('"', "")
    if not text:
        return "", "empty"
    if SCRIPT.search(text):
        return "", "dialogue script"
    if not all(ch in PUNCTUATION or ch.isdigit() or (ch.isalpha() and ord(ch) < 0x250) for ch in text):  # Latin letters
        return "", "characters"
    pieces = sentences_of(text)
    if len(pieces) > 1 and pieces[-1][-1] not in ".!?\"”":
        pieces = pieces[:-1]  # the reply was cut off mid-sentence
    low, high = WORD_LIMITS[genre]
    kept = []
    for piece in pieces:
        if len(" ".join(kept + [piece]).split()) > high:
            break
        kept.append(piece)
    if not kept:
        return "", "too long"
    text = " ".join(kept)
    if len(text.split()) < low:
        return "", "too short"
    if text[-1] not in ".!?\"”":
        text += "."
    return text, ""


MIN_LANGID_WORDS = 5  # langid guesses at random on "Sit down." or "Subtitles on."


def is_english(texts: list[str]) -> list[bool]:
    import langid

    langid.set_languages(["en", "de", "it", "zh", "fr", "es", "nl", "pt", "ja"])
    return [langid.classify(text)[0] == "en" for text in texts]


# ---------------------------------------------------------------------------------------------------------------
# Written by an LLM
# ---------------------------------------------------------------------------------------------------------------


def request(genre: str, number: int) -> dict:
    """The fixed request `number` of a written genre: its instruction and what it was drawn from."""
    rng = random.Random(f"{genre}:{number}")
    topic, persona, listener = rng.choice(EVERYDAY_TOPICS), rng.choice(PERSONAS), rng.choice(LISTENERS)
    if genre == "conversation":
        instruction = (f"You are {persona}, talking to {listener} about {topic}. Say two or three sentences the way people "
                       "really talk out loud: casual, everyday words. Output only the words you say.")
    elif genre == "question" and number % 2:
        instruction = f"Write one polite request or instruction that {persona} gives to {listener} about {topic}. Output only the request."
    elif genre == "question":
        instruction = f"Write one question that {persona} asks {listener} about {topic}. Output only the question."
    elif genre == "command":
        target, domains = rng.choice(COMMAND_TARGETS)
        topic = rng.choice(domains)
        instruction = f"Write one short spoken command, three to ten words, that a person gives to {target} about {topic}. Output only the command."
    elif genre == "prose":
        kind = rng.choice(PROSE_KINDS)
        instruction = (f"Write two or three sentences from {kind} about {topic}, as they would be read aloud. Plain prose, "
                       "no title. Output only the sentences.")
        persona = kind
    else:
        raise ValueError(f"{genre} is not a genre an LLM writes: {sorted(WRITTEN)}")
    return {"id": f"{genre}-{number}", "genre": genre, "topic": topic, "persona": persona, "instruction": instruction}


def add_disfluencies(text: str, rng: random.Random) -> str:
    """Spontaneous speech from written speech: one or two fillers, each at the start of a sentence or after a comma,
    and half the time a false start (a sentence's first two words said twice). A text with fillers is kept as it is."""
    if any(re.search(rf"\b{re.escape(filler)}\b", text, re.I) for filler in ("uh", "um", "you know", "I mean")):
        return text
    words = text.split()
    if rng.random() < 0.5:
        starts = [s for s in sentence_starts(words) if s + 4 <= len(words) and not any(w[-1] in ".!?," for w in words[s : s + 2])]
        if starts:
            start = rng.choice(starts)
            repeated = [words[start], words[start + 1] + ","]
            words[start] = lowered(words[start])
            words[start:start] = repeated
    starts = sentence_starts(words)
    places = starts + [i + 1 for i, word in enumerate(words[:-1]) if word.endswith(",")]
    for place in sorted(rng.sample(places, min(len(places), rng.choice((1, 1, 2)))), reverse=True):
        filler = rng.choice(FILLERS)
        if place in starts:
            words[place] = lowered(words[place])
            filler = filler[0].upper() + filler[1:]
        words.insert(place, filler + ",")
    return " ".join(words)


def sentence_starts(words: list[str]) -> list[int]:
    return [0] + [i + 1 for i, word in enumerate(words[:-1]) if word[-1] in ".!?"]


def lowered(word: str) -> str:
    """A sentence's first word once something comes before it ("I" and names keep their capital)."""
    if word[:1] == "I" and (len(word) == 1 or word[1] in "'’"):
        return word
    return word[:1].lower() + word[1:] if word[1:2].islower() or len(word) == 1 else word


def finish(reply: str, genre: str, row_id: str) -> tuple[str, str]:
    """A reply made into the genre's text, or why it is dropped: the checks, English, and for conversation the
    fillers and false starts (then the word limits again, since those lengthen it)."""
    text, problem = clean_text(reply, genre)
    if not problem and len(text.split()) >= MIN_LANGID_WORDS and not is_english([text])[0]:
        return "", "not English"
    if not problem and genre == "conversation":
        return clean_text(add_disfluencies(text, random.Random(row_id)), genre)
    return text, problem


def recheck(genre: str) -> collections.Counter:
    """Apply today's checks to a genre's cache, so that a rule added later reaches what was written before it: a kept
    text they change is replaced, one they drop is marked dropped, and a dropped reply they now accept is kept."""
    path, changes = genre_path(genre), collections.Counter()
    rows = read_rows(path)
    for row in rows:
        if "reply" in row:
            text, problem = finish(row["reply"], genre, row["id"])
            changes["kept again" if not problem else "same"] += 1
            if not problem:
                row.pop("dropped"), row.pop("reply")
                row["text"] = text
            else:
                row["dropped"] = problem
        elif "text" in row:
            text, problem = clean_text(row["text"], genre)
            changes[problem or ("same" if text == row["text"] else "changed")] += 1
            if problem:
                row["dropped"], row["reply"] = problem, row.pop("text")
            else:
                row["text"] = text
    if set(changes) - {"same"}:
        replace_rows(rows, path)
    return changes


def write_genre(genre: str, count: int, writer, writer_name: str, batch_size: int = 32) -> collections.Counter:
    """Requests 0..count-1 of a written genre not yet in its cache, sent in batches, each batch appended at once."""
    path = genre_path(genre)
    print(f"{genre}: rechecked what was written: {dict(recheck(genre))}")
    done = {row["id"] for row in read_rows(path)}
    todo = [request(genre, n) for n in range(count) if f"{genre}-{n}" not in done]
    print(f"{genre}: {count - len(todo)} of {count} requests already written, {len(todo)} to write")
    outcomes = collections.Counter()
    for start in tqdm(range(0, len(todo), batch_size), desc=f"writing {genre}", unit="batch"):
        batch = todo[start : start + batch_size]
        replies = writer.reply([r["instruction"] for r in batch], max_new_tokens=90, batch_size=batch_size,
                               temperature=0.9, seed=int(batch[0]["id"].rsplit("-", 1)[1]))
        rows = []
        for item, reply in zip(batch, replies):
            text, problem = finish(reply, genre, item["id"])
            row = {key: item[key] for key in ("id", "genre", "topic", "persona")} | {"source": writer_name}
            rows.append(row | ({"dropped": problem, "reply": reply} if problem else {"text": text}))
            outcomes[problem or "kept"] += 1
        append_rows(rows, path)
    return outcomes


# ---------------------------------------------------------------------------------------------------------------
# Collected: quotations of real writers, and numbers filled in by Faker
# ---------------------------------------------------------------------------------------------------------------


def fortune_rows(directory: str = FORTUNES_DIR) -> list[dict]:
    """Each fortune of FORTUNE_FILES without its attribution, kept when it passes the prose checks."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory} is missing: apt-get install fortunes (Debian) gives the quotations")
    rows = []
    for name in FORTUNE_FILES:
        with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as handle:
            entries = handle.read().split("\n%\n")
        for number, entry in enumerate(entries):
            lines = [line for line in entry.splitlines() if not re.match(r"^\s*(--|—)", line)]
            text, problem = clean_text(" ".join(lines), "prose")
            if problem or len(sentences_of(text)) != len(sentences_of(" ".join(" ".join(lines).split()))):
                continue  # a quotation is kept whole or not at all
            rows.append({"id": f"prose-fortunes-{name}-{number}", "genre": "prose", "topic": name, "persona": None,
                         "source": f"fortunes:{name}", "text": text})
    return rows


NUMBER_TEMPLATES = (
    "{name} was born on {date} in {city}.",
    "The meeting has been moved to {weekday}, {date}, at {time}.",
    "My phone number is {phone}, and I am free after {time}.",
    "Please send the parcel to {address}, {city}.",
    "The total comes to {price}, including tax.",
    "Flight {flight} to {city} leaves from gate {gate} at {time}.",
    "The population grew from {big} in {year} to {big2} in {year2}.",
    "Turn left after {small} miles and take exit {exit}.",
    "About {percent} of the {count} people we asked said yes.",
    "{name} scored {small} points in the last {minutes} minutes of the game.",
    "The temperature will drop to {temperature} degrees on {weekday} night.",
    "Room {room} is on the {ordinal} floor, next to the lift.",
    "I paid {price} for {small} tickets on {date}.",
    "Her appointment with Dr. {last_name} is on {date} at {time}.",
    "Invoice {invoice} from {company} is due on {date}.",
    "{company} was founded in {year} by {name}.",
    "We need {grams} grams of flour, {small} eggs and half a cup of milk.",
    "The train from {city} arrives at {time}, {minutes} minutes late.",
    "{name} and {name2} got married on {date} in {city}.",
    "The house at {address} sold for {price_big} last {month}.",
    "Your order number is {invoice}, and it should arrive by {weekday}.",
    "Chapter {small} starts on page {page}.",
    "{name} ran the race in {minutes} minutes and {seconds} seconds.",
    "In {year}, only {percent} of homes in {city} had a telephone.",
    "Call {name} back on {phone} before {time} tomorrow.",
)
NAME_LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "it_IT", "fr_FR", "es_ES", "en_AU")


def number_rows(count: int) -> list[dict]:
    """`count` sentences, number n filling template n % len with a Faker seeded by n: dates, times, prices, phone
    numbers, addresses and names from several locales."""
    from faker import Faker

    fake, names = Faker("en_US"), Faker(list(NAME_LOCALES))
    rows = []
    for number in range(count):
        fake.seed_instance(number)
        names.seed_instance(number)
        rng = random.Random(f"numbers:{number}")
        moment = fake.date_between(start_date="-60y", end_date="+2y")
        date = rng.choice([f"{moment:%B} {moment.day}, {moment.year}", f"{moment.day} {moment:%B} {moment.year}",
                           f"{moment:%B} {ordinal(moment.day)}"])
        hour, minute = rng.randint(1, 12), rng.choice([0, 5, 10, 15, 20, 30, 40, 45, 50])
        time = rng.choice([f"{hour}:{minute:02d} {rng.choice(['am', 'pm'])}", f"{hour % 12 + rng.choice([0, 12])}:{minute:02d}", f"{hour} o'clock"])
        year = rng.randint(1890, 2025)
        values = {
            "name": names.name(), "name2": names.name(), "last_name": names.last_name(), "city": fake.city(),
            "address": fake.street_address(), "company": fake.company(), "date": date, "weekday": f"{moment:%A}",
            "month": f"{moment:%B}", "time": time, "phone": fake.numerify("###-###-####"),
            "price": rng.choice(["$", "£", "€"]) + f"{rng.randint(2, 2000):,}" + rng.choice(["", f".{rng.randint(0, 99):02d}"]),
            "price_big": f"${rng.randint(90, 2500) * 1000:,}", "flight": f"{fake.random_uppercase_letter()}{fake.random_uppercase_letter()} {rng.randint(10, 9999)}",
            "gate": f"{fake.random_uppercase_letter()}{rng.randint(1, 40)}", "big": f"{rng.randint(2000, 900000):,}",
            "big2": f"{rng.randint(900000, 9000000):,}", "year": year, "year2": year + rng.randint(5, 80),
            "small": rng.randint(2, 30), "exit": rng.randint(3, 120), "percent": f"{rng.randint(3, 97)}%",
            "count": rng.choice([200, 500, 1000, 1200, 2500]), "minutes": rng.randint(2, 59), "seconds": rng.randint(1, 59),
            "temperature": rng.randint(-15, 38), "room": rng.randint(101, 950), "ordinal": ordinal(rng.randint(1, 30)),
            "invoice": fake.numerify("#####"), "grams": rng.choice([100, 150, 200, 250, 300, 500]), "page": rng.randint(12, 480),
        }
        text, problem = clean_text(NUMBER_TEMPLATES[number % len(NUMBER_TEMPLATES)].format(**values), "numbers")
        row = {"id": f"numbers-{number}", "genre": "numbers", "topic": NUMBER_TEMPLATES[number % len(NUMBER_TEMPLATES)],
               "persona": None, "source": "faker"}
        rows.append(row | ({"dropped": problem} if problem else {"text": text}))
    return rows


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


# ---------------------------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------------------------

GENRES = ("talk", "prose", "conversation", "question", "numbers", "command")
WRITTEN = ("conversation", "question", "command", "prose")
# Requests per written genre, and Faker sentences: sized for a CPU build (see synthesis/DATA.md).
REQUESTS = {"conversation": 900, "question": 700, "command": 450, "prose": 600}
NUMBER_SENTENCES = 800


def genre_path(genre: str) -> str:
    return os.path.join(TEXTS_DIR, f"{genre}.jsonl")


def talk_rows() -> list[dict]:

    return [{"id": chunk["id"], "genre": "talk", "topic": chunk["topic"], "persona": None, "source": "talks",
             "text": chunk["text"], "group": chunk["talk"]} for talk in read_talks(DEFAULT_TALKS) for chunk in chunk_talk(talk)]


def corpus() -> list[dict]:
    """Every kept text of every genre, each once (the first by genre order, then id order, of texts equal after
    `normalise`), with its hold-out group."""
    rows = talk_rows()
    for path in sorted(glob.glob(os.path.join(TEXTS_DIR, "*.jsonl"))):
        rows += [row | {"group": normalise(row["text"])} for row in read_rows(path) if "text" in row]
    seen, unique = set(), []
    for row in rows:
        key = normalise(row["text"])
        if key not in seen:
            seen.add(key)
            unique.append(row)
    return unique


# Texts per genre that a v2 build speaks, translates and asks about (each genre's first in hash order): sized so that
# the whole build fits a few CPU sessions (synthesis/DATA.md has what it measured).
V2_TEXTS = {"talk": 1000, "prose": 1200, "conversation": 700, "question": 600, "numbers": 500, "command": 350}


def hash_rank(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def held_out(row: dict, fraction: float = HELD_OUT_FRACTION) -> bool:
    """The hold-out rule: a hash of the row's group (its talk, or its text), so a text never changes split."""
    return is_held_out(row["group"], fraction)


def selection(counts: dict[str, int] = V2_TEXTS, texts: list[dict] | None = None) -> list[dict]:
    """The first `count` texts of each genre in hash order (all of them when a genre has fewer)."""
    texts = corpus() if texts is None else texts
    chosen = []
    for genre, count in counts.items():
        chosen += sorted((row for row in texts if row["genre"] == genre), key=lambda row: hash_rank(row["text"]))[:count]
    return chosen


def in_annotation_order(rows: list[dict], fraction: float = HELD_OUT_FRACTION) -> list[dict]:
    """The rows in the order the data is made (spoken, translated, asked about): the held-out ones first, then the
    training ones taking each genre in turn, so that any prefix of an unfinished job covers the test split first and
    then a sample of every genre."""
    held = [row for row in rows if held_out(row, fraction)]
    by_genre = collections.defaultdict(list)
    for row in rows:
        if not held_out(row, fraction):
            by_genre[row["genre"]].append(row)
    turns = itertools.zip_longest(*by_genre.values())
    return held + [row for turn in turns for row in turn if row is not None]


def annotation_order(rows: list[dict], fraction: float = HELD_OUT_FRACTION) -> list[str]:
    """The texts of `in_annotation_order`, each once."""
    return list(dict.fromkeys(row["text"] for row in in_annotation_order(rows, fraction)))


def stats() -> dict:
    texts = corpus()
    report = {}
    for genre in GENRES:
        members = [row for row in texts if row["genre"] == genre]
        dropped = collections.Counter(row["dropped"] for row in read_rows(genre_path(genre)) if "dropped" in row)
        report[genre] = {
            "texts": len(members), "held_out": sum(map(held_out, members)),
            "words": sum(len(row["text"].split()) for row in members), "dropped": dict(dropped.most_common()),
            "sources": dict(collections.Counter(row["source"].split(":")[0] for row in members)),
        }
    return report


@stops_with_one_line
def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="fill synthesis/texts/{genre}.jsonl")
    write.add_argument("--genres", nargs="+", default=["numbers", "prose-fortunes", *WRITTEN],
                       choices=["numbers", "prose-fortunes", *WRITTEN])
    add_writer_options(write)
    commands.add_parser("stats", help="texts per genre")
    args = parser.parse_args()
    if args.command == "stats":
        print(json.dumps(stats(), indent=1))
        return
    writer = None
    for genre in args.genres:
        if genre == "numbers":
            replace_rows(number_rows(NUMBER_SENTENCES), genre_path("numbers"))
            print(f"numbers: {NUMBER_SENTENCES} sentences")
        elif genre == "prose-fortunes":
            collected = fortune_rows()
            written = [row for row in read_rows(genre_path("prose")) if not row["id"].startswith("prose-fortunes-")]
            replace_rows(collected + written, genre_path("prose"))
            print(f"prose: {len(collected)} quotations kept")
        else:
            writer = writer or writer_from_args(args)
            print(genre, dict(write_genre(genre, REQUESTS[genre], writer, args.llm_model or args.writer or DEFAULT_WRITER)))


if __name__ == "__main__":
    main()
