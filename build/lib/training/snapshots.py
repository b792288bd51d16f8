"""Runs that outlive a machine: a committed snapshot of a run in progress, and its checkpoint rebuilt elsewhere.

A Trainer checkpoint of the multilingual default is 2.5 GB (the whole LLM) plus 160 MB of Adam moments; what the run
has learnt is its SpeechMapper and LoRA (tens of MB, fp16: scripts/export_default_weights.py). Exported from a
checkpoint-N directory, the snapshot also carries the run's position in its metadata: the Trainer's state (global
step, logs), the learning-rate schedule's state and the optimizer's parameter groups. `restore` turns it back into
a checkpoint-N under the run's output directory, so that `train.py CONFIG --resume_from_checkpoint latest` goes on at
the same step, on the same schedule and with the same next batches; only the Adam moments start again from zero
(they are not committed: six times the snapshot's size).

    python -m training.snapshots restore progress/multilingual-stage-c_asr.partial.safetensors \\
        --config configs/multilingual_stage_c_asr.yaml
"""

import argparse
import json
import os

import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file

from modeling_speechllm import SpeechLLMForConditionalGeneration
from processing_speechllm import SpeechLLMProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAINER_STATE, SCHEDULER, OPTIMIZER = "trainer_state.json", "scheduler.pt", "optimizer.pt"


def run_state_metadata(checkpoint_dir: str) -> dict[str, str]:
    """A Trainer checkpoint's position (state, schedule, optimizer groups) as safetensors metadata; {} elsewhere."""
    if not os.path.exists(os.path.join(checkpoint_dir, TRAINER_STATE)):
        return {}
    with open(os.path.join(checkpoint_dir, TRAINER_STATE)) as handle:
        trainer_state = handle.read()
    scheduler = torch.load(os.path.join(checkpoint_dir, SCHEDULER), weights_only=True)
    groups = torch.load(os.path.join(checkpoint_dir, OPTIMIZER), weights_only=True, map_location="cpu")["param_groups"]
    return {"trainer_state": trainer_state, "scheduler": json.dumps(scheduler), "optimizer_param_groups": json.dumps(groups)}


def snapshot_model(snapshot: str, base_model: str, metadata: dict) -> SpeechLLMForConditionalGeneration:
    """The run's starting model with the snapshot's trained tensors in it (LoRA attached first where the run did)."""
    model = SpeechLLMForConditionalGeneration.from_pretrained(base_model)
    lora = json.loads(metadata.get("lora") or "null")
    if lora and not model.config.lora:
        model.enable_lora(**lora)
    trained = load_file(snapshot)
    own = model.state_dict()
    unknown = sorted(set(trained) - set(own))
    if unknown:
        raise ValueError(f"{snapshot} does not fit {base_model}: it has {len(unknown)} tensors the model lacks ({unknown[:3]}...)")
    model.load_state_dict({key: value.to(own[key].dtype) for key, value in trained.items()}, strict=False)
    return model


def restore_checkpoint(snapshot: str, base_model: str, output_dir: str) -> str:
    """Rebuild `output_dir`/checkpoint-N from a snapshot exported from a run's checkpoint-N; returns its path."""
    with safe_open(snapshot, framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "trainer_state" not in metadata:
        raise ValueError(
            f"{snapshot} holds weights but no run state: export it from a checkpoint-N directory "
            "(scripts/export_default_weights.py OUTPUT_DIR/checkpoint-N --output ...)"
        )
    step = json.loads(metadata["trainer_state"])["global_step"]
    target = os.path.join(output_dir, f"checkpoint-{step}")
    model = snapshot_model(snapshot, base_model, metadata)
    model.save_pretrained(target)
    SpeechLLMProcessor.from_pretrained(base_model).save_pretrained(target)
    with open(os.path.join(target, TRAINER_STATE), "w") as handle:
        handle.write(metadata["trainer_state"])
    torch.save(json.loads(metadata["scheduler"]), os.path.join(target, SCHEDULER))
    # Fresh moments, the run's groups and rates: Adam starts each parameter's state again on its next step.
    torch.save({"state": {}, "param_groups": json.loads(metadata["optimizer_param_groups"])}, os.path.join(target, OPTIMIZER))
    return target


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    restore = commands.add_parser("restore", help="rebuild a run's checkpoint-N from its committed snapshot")
    restore.add_argument("snapshot")
    restore.add_argument("--config", required=True, help="the run's train.py YAML: its model_name_or_path and output_dir")
    args = parser.parse_args()
    with open(args.config) as handle:
        config = yaml.safe_load(handle)
    print(f"rebuilt {restore_checkpoint(args.snapshot, config['model_name_or_path'], config['output_dir'])}")


if __name__ == "__main__":
    main()
