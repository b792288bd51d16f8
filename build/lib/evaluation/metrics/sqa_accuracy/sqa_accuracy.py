"""Spoken-QA accuracy: an answer is right when, after Whisper's English normaliser, it equals the reference or
contains it as a whole-word span (answers are often phrased as a sentence).

A local `evaluate` module: `evaluate.load("evaluation/metrics/sqa_accuracy")` works offline."""

import datasets
import evaluate
from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

NORMALISER = EnglishTextNormalizer({})


def is_correct(prediction: str, reference: str) -> bool:
    prediction, reference = NORMALISER(prediction), NORMALISER(reference)
    return bool(reference) and (prediction == reference or f" {reference} " in f" {prediction} ")


class SqaAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Exact or contained-span match accuracy after normalisation",
            citation="",
            inputs_description="predictions: list of str; references: list of str",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        correct = [is_correct(p, r) for p, r in zip(predictions, references)]
        return {"accuracy": sum(correct) / max(1, len(correct)), "correct": sum(correct), "total": len(correct)}
