"""Build the embedded default: real Whisper-tiny.en + SmolLM2-135M-Instruct (converted offline from pip packages)
with the project's own trained SpeechMapper and LoRA weights (default_model/), as one checkpoint directory.

    python scripts/build_default_model.py OUTDIR            # the trained default
    python scripts/build_default_model.py OUTDIR --base-only  # the untrained composition train.py starts from

OUTDIR loads with pipeline("speech-instruct", model=OUTDIR, trust_remote_code=True) in a fresh process.
default_model/RECIPE.md gives the commands that trained the shipped weights.
"""

import argparse
import hashlib
import json
import os
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from build_from_parts import build_from_parts  # noqa: E402
from conversion import parts  # noqa: E402

WEIGHTS_DIR = os.path.join(ROOT, "default_model")


def default_settings() -> dict:
    with open(os.path.join(WEIGHTS_DIR, "settings.json")) as handle:
        return json.load(handle)


def build_default(outdir: str, base_only: bool = False):
    settings = default_settings()
    model, processor = build_from_parts(parts.whisper_tiny_en(), parts.smollm2_135m_instruct(), **settings["config"])
    if not base_only:
        weights_file = os.path.join(WEIGHTS_DIR, "weights.safetensors")
        if not os.path.exists(weights_file):
            raise FileNotFoundError(f"{weights_file} is missing: train it (default_model/RECIPE.md) or pass --base-only")
        if settings.get("lora"):
            model.enable_lora(**settings["lora"])
        trained = {key: value.float() for key, value in load_file(weights_file).items()}
        missing = set(trained) - set(model.state_dict())
        if missing:
            raise ValueError(f"the shipped weights do not fit this model: {sorted(missing)[:3]}...")
        model.load_state_dict(trained, strict=False)
    model.save_pretrained(outdir)
    processor.save_pretrained(outdir)
    return model, processor


def read_text(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def built_default(outdir: str) -> str:
    """OUTDIR holding the embedded default, (re)built whenever the shipped weights change (their digest is kept
    beside it); without shipped weights, the untrained composition (same shapes, same cost)."""
    weights = os.path.join(WEIGHTS_DIR, "weights.safetensors")
    digest = "base-only"
    if os.path.exists(weights):
        with open(weights, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    stamp = os.path.join(outdir, "shipped_weights.sha256")
    if read_text(stamp) != digest:
        print(f"building the embedded default into {outdir} (once) ...", flush=True)
        build_default(outdir, base_only=digest == "base-only")
        with open(stamp, "w") as handle:
            handle.write(digest)
    return outdir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--base-only", action="store_true", help="skip the shipped weights (a starting point for training)")
    args = parser.parse_args()
    torch.manual_seed(0)  # the base's mapper initialisation, reproducible
    build_default(args.outdir, args.base_only)
    print(f"wrote {args.outdir}")


if __name__ == "__main__":
    main()
