"""Build the embedded default: the real parts named in default_model/settings.json (converted offline from pip
packages) with the project's own trained SpeechMapper and LoRA weights (default_model/), as one checkpoint directory.

    python scripts/build_default_model.py OUTDIR            # the trained default
    python scripts/build_default_model.py OUTDIR --base-only  # the untrained composition train.py starts from
    python scripts/build_default_model.py OUTDIR --base-only --settings configs/multilingual_default.json  # the next default's start
    python scripts/build_default_model.py OUTDIR --settings configs/multilingual_default.json --weights progress/X.safetensors
                                                            # a run in progress, from its committed snapshot

OUTDIR loads with pipeline("speech-instruct", model=OUTDIR, trust_remote_code=True) in a fresh process.
default_model/RECIPE.md gives the commands that trained the shipped weights.
"""

import argparse
import hashlib
import json
import os

import torch
from safetensors.torch import load_file

from conversion import parts
from scripts.build_from_parts import build_from_parts
from training.model_card import record_kept_results, write_model_card

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WEIGHTS_DIR = os.path.join(ROOT, "default_model")


DEFAULT_SETTINGS = os.path.join(WEIGHTS_DIR, "settings.json")
DEFAULT_WEIGHTS = os.path.join(WEIGHTS_DIR, "weights.safetensors")
DEFAULT_RESULTS = os.path.join(WEIGHTS_DIR, "results.json")  # what the shipped weights measure: evaluation.run --keep_in
# The CTC head fitted on the shipped mapper (configs/multilingual_stage_c_real_ctc_head.yaml): a file of its own, so
# that fitting it did not rewrite the 40 MB of mapper and LoRA that it reads.
DEFAULT_CTC_HEAD = os.path.join(WEIGHTS_DIR, "ctc_head.safetensors")


def default_settings(path: str = DEFAULT_SETTINGS) -> dict:
    """{"parts": {"encoder", "llm"} (names in conversion.parts.PARTS), "config": model settings, "lora": adapters}."""
    with open(path) as handle:
        return json.load(handle)


def compose(settings: dict):
    """(model, processor): the settings' encoder and LLM parts with a freshly initialised SpeechMapper."""
    names = settings["parts"]
    encoder, llm = (parts.part(names[role]) for role in ("encoder", "llm"))
    base_models = {role: parts.HUB_IDS[names[role]] for role in ("encoder", "llm")}
    return build_from_parts(encoder, llm, base_models=base_models, **settings["config"])


def trained_lora_settings(weights_file: str, settings: dict) -> dict | None:
    """The LoRA settings the weights were trained with: in the file's metadata (newer exports), else the settings'."""
    from safetensors import safe_open

    with safe_open(weights_file, framework="pt") as handle:
        stored = (handle.metadata() or {}).get("lora")
    return json.loads(stored) if stored is not None else settings.get("lora")


def build_default(outdir: str, base_only: bool = False, settings_path: str = DEFAULT_SETTINGS, weights_file: str = DEFAULT_WEIGHTS):
    """The parts of `settings_path` + the trained mapper and LoRA of `weights_file` (scripts/export_default_weights.py
    writes it: the shipped default's, or a snapshot of a run in progress) as one checkpoint directory."""
    settings = default_settings(settings_path)
    model, processor = compose(settings)
    if not base_only:
        if not os.path.exists(weights_file):
            raise FileNotFoundError(f"{weights_file} is missing: train it (default_model/RECIPE.md) or pass --base-only")
        lora = trained_lora_settings(weights_file, settings)
        if lora:
            model.enable_lora(**lora)
        trained = {key: value.float() for key, value in load_file(weights_file).items()}
        if weights_file == DEFAULT_WEIGHTS and os.path.exists(DEFAULT_CTC_HEAD):
            trained.update(load_file(DEFAULT_CTC_HEAD))
        missing = set(trained) - set(model.state_dict())
        if missing:
            raise ValueError(f"the shipped weights do not fit this model: {sorted(missing)[:3]}...")
        model.load_state_dict(trained, strict=False)
    model.save_pretrained(outdir)
    processor.save_pretrained(outdir)
    stale_card = os.path.join(outdir, "README.md")
    if os.path.exists(stale_card):  # scores measured on what was built here before are not these weights' scores
        os.remove(stale_card)
    write_model_card(outdir, None if base_only else settings.get("training", {}))
    if not base_only and weights_file == DEFAULT_WEIGHTS:
        record_kept_results(outdir, DEFAULT_RESULTS)
    return model, processor


def read_text(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def built_default(outdir: str) -> str:
    """OUTDIR holding the embedded default, (re)built whenever the shipped weights or settings change (their digest
    is kept beside it); without shipped weights, the untrained composition (same shapes, same cost)."""
    weights = DEFAULT_WEIGHTS
    digest = hashlib.sha256()
    for path in (DEFAULT_SETTINGS, weights, DEFAULT_CTC_HEAD, DEFAULT_RESULTS):
        if os.path.exists(path):
            with open(path, "rb") as handle:
                digest.update(handle.read())
    shipped = os.path.exists(weights)
    stamp = os.path.join(outdir, "shipped_weights.sha256")
    if read_text(stamp) != digest.hexdigest():
        print(f"building the embedded default into {outdir} (once) ...", flush=True)
        build_default(outdir, base_only=not shipped)
        with open(stamp, "w") as handle:
            handle.write(digest.hexdigest())
    return outdir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--base-only", action="store_true", help="skip the shipped weights (a starting point for training)")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS, help="parts and model settings (JSON)")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="trained mapper + LoRA (scripts/export_default_weights.py)")
    args = parser.parse_args()
    torch.manual_seed(0)  # the base's mapper initialisation, reproducible
    build_default(args.outdir, args.base_only, args.settings, args.weights)
    print(f"wrote {args.outdir}")


if __name__ == "__main__":
    main()
