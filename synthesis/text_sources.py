"""Which texts an annotation build (synthesis.translation, synthesis.questions) works on: a v2 build's texts by
default, a file of texts, or a data source's transcripts as training reads them (training/sources.py), so that its
clips can be trained on as ST and SQA rows."""

import argparse

from synthesis.genres import annotation_order, selection


def add_text_options(parser: argparse.ArgumentParser, default_output: str):
    texts = parser.add_mutually_exclusive_group()
    texts.add_argument("--texts", help="a file with one text per line (default: the texts of a v2 build, synthesis.genres.selection())")
    texts.add_argument("--source", help="a data source (a path or a JSON object, as train.py's --train_file takes it, e.g. "
                                        "'{\"path\": \"../shared/data/speechocean762\", \"text_column\": \"text\", "
                                        "\"text_case\": \"sentence\"}'): its transcripts, as training reads them")
    parser.add_argument("--output", default=default_output, help=f"the cache to fill (default: {default_output})")


def chosen_texts(args: argparse.Namespace) -> list[str]:
    """The texts the options name, in order, each once; checked before any LLM is loaded."""
    if args.source:
        texts = source_transcripts(args.source)
    elif args.texts:
        with open(args.texts) as handle:
            texts = handle.read().splitlines()
    else:
        texts = annotation_order(selection())
    return list(dict.fromkeys(text for text in texts if text and text.strip()))


def source_transcripts(spec: str) -> list[str]:
    """The transcripts of a data source, as its rows give them to training (column mapping and text_case applied);
    a bad source stops here with the data error's message."""
    from training.sources import DataError, load_source, parse_source

    try:
        source = parse_source(spec)  # a path, or a JSON object (parse_source reads both)
        rows = load_source(source)
        if "transcript" not in (rows.column_names or []):
            raise DataError(f"{source.name} has no transcript column (its columns: {', '.join(rows.column_names or [])}): "
                            "give \"text_column\" in the source")
        return list(rows["transcript"])
    except DataError as error:
        raise SystemExit(f"error: {error}") from None
