"""The main job: the embedded default speech LLM answers about a real recording through pipeline("speech-instruct").

    python scripts/demo.py [--audio FILE] [--question TEXT] [--checkpoint DIR | --tiny]

By default it builds the embedded default into outputs/default (Whisper tiny.en and SmolLM2-135M-Instruct converted
from their pip packages, plus the project's trained SpeechMapper and LoRA in default_model/) and runs it on the CMU
ARCTIC recording in assets/: a transcription, an answer to a spoken-content question and translations into German,
Italian and Chinese, each with the language an offline identifier (langid) hears in it.
--checkpoint runs any speechllm checkpoint; --tiny the tiny RANDOM test checkpoint (its answers are noise).
"""

import argparse
import os

import soundfile

from evaluation.arctic import ARCTIC
from evaluation.language_id import LANGUAGE_NAMES, identify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_checkpoint(path: str) -> str:
    from scripts.make_tiny_checkpoint import build_tiny

    if not os.path.exists(os.path.join(path, "config.json")):
        model, processor = build_tiny("seamless")
        model.save_pretrained(path)
        processor.save_pretrained(path)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="any speechllm checkpoint directory (default: the embedded default)")
    parser.add_argument("--tiny", action="store_true", help="the tiny RANDOM test checkpoint instead")
    parser.add_argument("--audio", default=ARCTIC.audio, help="a recording (default: CMU ARCTIC arctic_a0007)")
    parser.add_argument("--question", help="a question about what is said (default: one about the ARCTIC clip)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="the weights' precision; auto: bfloat16 where the CPU computes it natively (~1.8x faster, "
                             "same WER on the dev speakers), else float32")
    args = parser.parse_args()

    outputs = os.path.join(ROOT, "outputs")
    os.makedirs(outputs, exist_ok=True)
    if args.tiny:
        checkpoint = tiny_checkpoint(os.path.join(outputs, "tiny-checkpoint"))
        print(f"Using the tiny RANDOM checkpoint in {checkpoint}: its outputs below are noise, not answers.")
    else:
        from scripts.build_default_model import built_default

        checkpoint = args.checkpoint or built_default(os.path.join(outputs, "default"))
        if not args.checkpoint:
            print("The embedded default is a small CPU-trained model, far from Whisper on real speech (37 % WER on "
                  "the project's real recordings, Whisper tiny.en 6 %); its translations and answers follow what it heard: "
                  "default_model/TRIALS.md says what it measures.")
    question = args.question or (ARCTIC.question if args.audio == ARCTIC.audio else "What is the speaker talking about?")

    import torch
    from transformers import pipeline

    from pipeline_speechllm import native_cpu_dtype

    dtype = native_cpu_dtype() if args.dtype == "auto" else getattr(torch, args.dtype)
    pipe = pipeline("speech-instruct", model=checkpoint, trust_remote_code=True, dtype=dtype)
    pipe.model.merge_lora()  # inference only: folded adapters decode ~1.25× faster, same tokens (bench/RESULTS.md)
    print(f"model: {checkpoint} ({str(dtype).removeprefix('torch.')})\naudio: {args.audio} ({soundfile.info(args.audio).duration:.2f} s)")
    requests = {
        "transcription": dict(task="transcribe"),
        f"answer to {question!r}": dict(task="answer", question=question),
    }
    for label, request in requests.items():
        print(f"{label}: {pipe(args.audio, max_new_tokens=args.max_new_tokens, **request)!r}")
    for language in ("de", "it", "zh"):
        text = pipe(args.audio, task="translate", target_language=language, max_new_tokens=args.max_new_tokens)
        print(f"translation ({language}): {text!r}  [{heard_language(text, language)}]")


def heard_language(text: str, wanted: str) -> str:
    """Whether the output is in the requested language, by langid: the check evaluation.run makes for ST."""
    found = identify([text])[0]
    if found == wanted:
        return f"in {LANGUAGE_NAMES[wanted]}"
    return f"NOT in {LANGUAGE_NAMES[wanted]}: langid hears {LANGUAGE_NAMES.get(found, found or 'nothing')}"


if __name__ == "__main__":
    main()
