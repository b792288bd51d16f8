"""Corpus BLEU and chrF with sacrebleu; Chinese targets use sacrebleu's zh tokeniser (character-level for CJK).

A local `evaluate` module: `evaluate.load("evaluation/metrics/bleu_chrf")` works offline."""

import datasets
import evaluate
import sacrebleu


class BleuChrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="sacreBLEU BLEU and chrF",
            citation="",
            inputs_description="predictions, references: lists of str; language: target language code",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, language="de"):
        tokenize = "zh" if language == "zh" else "13a"
        bleu = sacrebleu.corpus_bleu(predictions, [references], tokenize=tokenize)
        chrf = sacrebleu.corpus_chrf(predictions, [references])
        return {"bleu": bleu.score, "chrf": chrf.score, "tokenize": tokenize}
