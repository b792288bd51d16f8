"""WER after Whisper's English text normaliser (as the IWSLT instruction-following track scores ASR), with jiwer.

A local `evaluate` module: `evaluate.load("evaluation/metrics/normalised_wer")` works offline."""

import datasets
import evaluate
import jiwer
from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

# Whisper's spelling map (British → American) ships with its Hub tokenizer files, not offline: without it the
# normaliser still folds case, punctuation, numbers, contractions and fillers.
NORMALISER = EnglishTextNormalizer({})


class NormalisedWer(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Word error rate after Whisper's English normaliser",
            citation="",
            inputs_description="predictions: list of str; references: list of str",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        pairs = [(NORMALISER(r), NORMALISER(p)) for p, r in zip(predictions, references)]
        kept = [(r, p) for r, p in pairs if r.strip()]
        if not kept:
            raise ValueError("every reference is empty after normalisation: nothing to score")
        output = jiwer.process_words([r for r, _ in kept], [p for _, p in kept])
        return {
            "wer": output.wer,
            "substitutions": output.substitutions,
            "deletions": output.deletions,
            "insertions": output.insertions,
            "reference_words": sum(len(r.split()) for r, _ in kept),
        }
