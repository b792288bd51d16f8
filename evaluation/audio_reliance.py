"""Does the LLM read the audio? The teacher-forced loss of each clip's transcript given its own audio, against the
same transcript given another clip's audio (the sample rotated by one).

A model that reads what it hears finds its own clip's transcript far likelier (the gap is large, most clips are
better with their own audio); one that writes in the style of its training text scores both alike (a gap near 0):
greedy transcripts then say nothing of what was spoken, however fluent. Cheaper than decoding and tells the two
apart long before WER moves.

    python -m evaluation.audio_reliance --model outputs/multilingual-stage-c --data outputs/fakacl-v2/test.jsonl \\
        --limit 40 --output_dir outputs/reliance-stage-c
"""

import json
import os

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from evaluation.probe_mapper import asr_rows_parser
from modeling_speechllm import SpeechLLMForConditionalGeneration
from processing_speechllm import SpeechLLMProcessor
from training.data import InstructionCollator, usable_rows_of_tasks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over each row's labelled (answer) tokens."""
    targets = labels[:, 1:]
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), targets, ignore_index=-100, reduction="none")
    return losses.sum(1) / (targets != -100).sum(1).clamp(min=1)


@torch.inference_mode()
def transcript_losses(model, collator, rows: list[dict], audio_rows: list[dict]) -> list[float]:
    """The loss of rows[i]'s transcript with audio_rows[i]'s audio in the speech slot."""
    examples = [{**row, "as_task": "asr", "audio_source": audio["audio_source"]} for row, audio in zip(rows, audio_rows)]
    batch = collator(examples)
    batch.pop("transcript_ids", None)  # the CE alone: no σ·MSE to the transcript
    labels = batch.pop("labels")
    return per_example_loss(model(**batch).logits, labels).tolist()


def audio_reliance(model, processor, rows: list[dict], batch_size: int = 4) -> dict:
    """Per-clip loss with its own audio and with the next clip's; their means, gap and the share of clips better off
    with their own audio."""
    if len(rows) < 2:
        raise ValueError("audio reliance compares clips with each other's audio: give at least two ASR rows")
    collator = InstructionCollator(processor)
    swapped = rows[1:] + rows[:1]
    own, other = [], []
    for first in tqdm(range(0, len(rows), batch_size), desc="teacher-forced transcripts", unit="batch"):
        window = slice(first, first + batch_size)
        own += transcript_losses(model, collator, rows[window], rows[window])
        other += transcript_losses(model, collator, rows[window], swapped[window])
    own_mean, other_mean = sum(own) / len(own), sum(other) / len(other)
    return {
        "rows": len(rows),
        "loss_own_audio": own_mean,
        "loss_other_audio": other_mean,
        "gap": other_mean - own_mean,
        "share_better_with_own_audio": sum(o < s for o, s in zip(own, other)) / len(own),
        "per_clip": [{"id": row["id"], "own": o, "other": s} for row, o, s in zip(rows, own, other)],
    }


def main():
    args = asr_rows_parser(__doc__, batch_size=4).parse_args()
    model = SpeechLLMForConditionalGeneration.from_pretrained(args.model).eval()
    processor = SpeechLLMProcessor.from_pretrained(args.model)
    rows = usable_rows_of_tasks(args.data, ("asr",), processor, "audio reliance", args.limit)
    results = {"model": args.model, "data": args.data, **audio_reliance(model, processor, rows, args.batch_size)}
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "audio_reliance.json"), "w") as handle:
        json.dump(results, handle, indent=2, ensure_ascii=False)
    print(
        f"transcript loss with own audio {results['loss_own_audio']:.3f}, with another clip's "
        f"{results['loss_other_audio']:.3f} (gap {results['gap']:.3f}); "
        f"{100 * results['share_better_with_own_audio']:.0f} % of {results['rows']} clips better with their own"
    )


if __name__ == "__main__":
    main()
