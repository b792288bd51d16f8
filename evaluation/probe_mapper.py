"""What the SpeechMapper carries before any LLM layer reads it: two LLM-free readings of its output, scored by WER.

- ctc: the CTC head after mapper block 1 (the 2026 vocabulary head or the compact one), best path (repeats merged,
  blanks dropped); only for checkpoints that have one.
- nearest_embedding: each mapper output vector read as the LLM vocabulary row closest in cosine, the reserved pad
  token dropped: how far stage A got towards its target (the transcript's embedding rows, then padding).

A stage-A checkpoint whose CTC reading is good but whose nearest-embedding reading is poor carries the words in block
1 and has not yet put them where stage A asks; the LLM in stage C reads the output, not the CTC head.

    python -m evaluation.probe_mapper --model outputs/default-stage-a --data outputs/fakacl/test.jsonl \\
        --output_dir outputs/probe-stage-a
"""

import argparse
import json
import os

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from evaluation.run import load_metric
from modeling_speechllm import SpeechLLMForConditionalGeneration, lengths_to_mask
from processing_speechllm import SpeechLLMProcessor
from training.data import usable_rows_of_tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ctc_best_path(logits: torch.Tensor, lengths: torch.Tensor, blank_id: int) -> list[list[int]]:
    """Greedy CTC decoding of each row's first `length` frames: argmax, merge repeats, drop blanks."""
    paths = []
    for frames, length in zip(logits.argmax(-1), lengths.tolist()):
        best = frames[:length]
        changed = torch.ones_like(best, dtype=torch.bool)
        changed[1:] = best[1:] != best[:-1]
        paths.append([int(i) for i in best[changed] if i != blank_id])
    return paths


def nearest_embedding_ids(embeddings: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor, skip_id: int) -> list[list[int]]:
    """Each valid output vector → the id of the embedding row nearest in cosine; `skip_id` (padding) dropped."""
    similarity = F.normalize(embeddings.float(), dim=-1) @ F.normalize(table.float(), dim=-1).T
    nearest = similarity.argmax(-1)
    valid = lengths_to_mask(lengths, embeddings.shape[1])
    return [[int(i) for i in row[keep] if i != skip_id] for row, keep in zip(nearest, valid)]


@torch.inference_mode()
def read_mapper(model, processor, audios: list) -> dict[str, list[list[int]]]:
    """Both readings of one batch of audio sources (the CTC one only where the model has a CTC head)."""
    features = processor.extract_features(processor.prepare_audio(audios))
    audio = model.get_audio_features(features["input_features"], features["input_features_mask"])
    pad_id = model.config.mapper_pad_token_id
    readings = {"nearest_embedding": nearest_embedding_ids(audio.embeddings, audio.lengths, model.get_input_embeddings().weight, pad_id)}
    if model.ctc_head is not None:
        logits = model.ctc_head(audio.first_block_hidden, model.get_input_embeddings().weight)
        readings["ctc"] = ctc_best_path(logits, audio.first_block_lengths, pad_id)
    return readings


def probe(model_dir: str, data: str, batch_size: int = 8, limit: int | None = None) -> dict:
    model = SpeechLLMForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = SpeechLLMProcessor.from_pretrained(model_dir)
    rows = usable_rows_of_tasks(data, ("asr",), processor, "probe", limit)
    if not rows:
        raise ValueError(f"{data} has no usable ASR rows to probe")
    readings = {}
    for first in tqdm(range(0, len(rows), batch_size), desc="probing the mapper", unit="batch"):
        batch = rows[first : first + batch_size]
        for name, ids in read_mapper(model, processor, [row["audio_source"] for row in batch]).items():
            readings.setdefault(name, []).extend(processor.tokenizer.batch_decode(ids, skip_special_tokens=True))
    references = [row["transcript"] for row in rows]
    wer = load_metric("normalised_wer")
    return {
        "model": model_dir,
        "data": data,
        "rows": len(rows),
        "wer": {name: wer.compute(predictions=texts, references=references)["wer"] for name, texts in readings.items()},
        "predictions": [{"id": row["id"], "reference": row["transcript"], **{n: t[i] for n, t in readings.items()}} for i, row in enumerate(rows)],
    }


def asr_rows_parser(description: str, batch_size: int) -> argparse.ArgumentParser:
    """The command line of a diagnostic that reads a model's ASR rows of one manifest and writes a JSON report."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="manifest (.jsonl/.csv/.tsv) or a datasets directory")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--batch_size", type=int, default=batch_size)
    parser.add_argument("--limit", type=int, help="the first N usable ASR rows only")
    return parser


def main():
    args = asr_rows_parser(__doc__, batch_size=8).parse_args()
    results = probe(args.model, args.data, args.batch_size, args.limit)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "probe.json"), "w") as handle:
        json.dump(results, handle, indent=2, ensure_ascii=False)
    for name, value in results["wer"].items():
        print(f"{name}: WER {100 * value:.1f} % over {results['rows']} clips")


if __name__ == "__main__":
    main()
