"""The checkpoint a recipe starts from, composed from its parts: a pretrained speech encoder and a causal LM by Hub
id or path, and the SpeechLLMConfig values of the recipe (mapper shapes, encoder layer, CTC head, ...).

A paper's config names its parts instead of a built checkpoint (configs/iwslt2025/, configs/iwslt2026/):

    encoder_name_or_path: facebook/seamless-m4t-v2-large
    llm_name_or_path: meta-llama/Llama-3.1-8B-Instruct
    model_config: configs/iwslt2025/model.yaml   # {encoder_layer: 24, frame_average: 3, mapper_strides: [2, 2], ...}

train.py composes it once (scripts/build_from_parts.py's code: reserved tokens for the placeholder and the stage-A
pad, a fresh SpeechMapper) into a directory beside the stage's output, named by a hash of the parts and values, so
stages A, B and C of one recipe (and a resumed run) share it, and a changed value composes a new one.
"""

import hashlib
import json
import logging
import os
import shutil
import socket

import torch

logger = logging.getLogger("speechllm.train")

# Where a paper's parts keep their published config.json (no weights): training.plan builds them on the meta device.
KEPT_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "hub")


def parse_model_config(values) -> dict:
    """`model_config` as given: a mapping (from a YAML file), its JSON text (from a flag), a YAML/JSON file of it (one
    file that a recipe's stages share), or nothing."""
    if values is None or isinstance(values, dict):
        return dict(values or {})
    if values.endswith((".yaml", ".yml", ".json")):
        if not os.path.isfile(values):
            raise SystemExit(f"train.py: --model_config {values} does not exist")
        with open(values) as handle:
            import yaml

            return parse_model_config(yaml.safe_load(handle))  # JSON is YAML too
    try:
        parsed = json.loads(values)
    except json.JSONDecodeError as error:
        raise SystemExit(f"train.py: --model_config must be a JSON object of SpeechLLMConfig values ({error})") from None
    if not isinstance(parsed, dict):
        raise SystemExit(f"train.py: --model_config must be a JSON object of SpeechLLMConfig values (got {values!r})")
    return parsed


def base_model_dir(output_dir: str, encoder: str, llm: str, model_config: dict, dtype: str) -> str:
    """`base-<hash>` beside the stage's output directory: one per set of parts and values."""
    key = json.dumps({"encoder": encoder, "llm": llm, "config": model_config, "dtype": dtype}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return os.path.join(os.path.dirname(os.path.abspath(output_dir)), f"base-{digest}")


def compose_base_model(encoder: str, llm: str, model_config: dict, output_dir: str, dtype: str = "float32") -> str:
    """The composed checkpoint's directory, written once (under a temporary name, then renamed: a killed run leaves
    no half-written base behind)."""
    path = base_model_dir(output_dir, encoder, llm, model_config, dtype)
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    from scripts.build_from_parts import build_from_parts

    logger.warning("composing the base checkpoint from %s and %s into %s (once)", encoder, llm, path)
    model, processor = build_from_parts(encoder, llm, dtype=getattr(torch, dtype), **model_config)
    # Each node's first process composes it; on a filesystem the nodes share, they race: each writes its own copy and
    # the first rename wins.
    partial = f"{path}.partial-{socket.gethostname()}-{os.getpid()}"
    model.save_pretrained(partial)
    processor.save_pretrained(partial)
    try:
        os.replace(partial, path)
    except OSError:
        if not os.path.exists(os.path.join(path, "config.json")):
            raise
        shutil.rmtree(partial)  # another node's copy of the same parts and values is in place
    return path
