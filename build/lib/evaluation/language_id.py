"""Which language a text is in, offline: langid's bundled model, restricted to the languages a speech LLM of this
project is asked for and those it most often drifts into (a closed set is far more accurate on short outputs)."""

CANDIDATES = ("en", "de", "it", "zh", "fr", "es", "nl", "pt", "ja")
# English names of the languages the project speaks of (prompts, the main job's verdicts, the demo page's menu)
LANGUAGE_NAMES = {"en": "English", "de": "German", "it": "Italian", "zh": "Chinese", "fr": "French", "es": "Spanish",
                  "nl": "Dutch", "pt": "Portuguese", "ja": "Japanese"}


def identify(texts: list[str]) -> list[str]:
    """langid's guess per text; "" for an empty text."""
    import langid

    langid.set_languages(list(CANDIDATES))
    return [langid.classify(text)[0] if text.strip() else "" for text in texts]


def adherence(texts: list[str], language: str) -> float:
    """The share of texts identified as `language`."""
    guesses = identify(texts)
    return sum(guess == language for guess in guesses) / max(1, len(guesses))
