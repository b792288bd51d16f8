"""Keep the project's own trained weights of a run (SpeechMapper + LoRA + CTC head, fp16) as
default_model/weights.safetensors, and their LoRA settings in default_model/settings.json.

    python scripts/export_default_weights.py outputs/default-stage-c
    python scripts/export_default_weights.py outputs/multilingual-stage-c/checkpoint-100 --output progress/stage-c.safetensors
    python scripts/export_default_weights.py outputs/multilingual-stage-c_real-ctc-head --only ctc_head \
        --output default_model/ctc_head.safetensors     # the CTC head fitted on the shipped mapper, alone

The second form snapshots a run in progress (tens of MB, committed) so that another machine continues it: from a
checkpoint-N directory the file's metadata also carries the run's position (Trainer state, learning-rate schedule,
optimizer groups), and `python -m training.snapshots restore` rebuilds checkpoint-N from it; from a finished run,
scripts/build_default_model.py --weights rebuilds the model. The metadata carries the LoRA settings (r, α, target
modules) the weights were trained with.

The real parts (Whisper, SmolLM2) are not copied: scripts/build_default_model.py rebuilds them from pip packages.
"""

import argparse
import json
import os

from safetensors.torch import save_file

from modeling_speechllm import SpeechLLMForConditionalGeneration
from training.snapshots import run_state_metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OWN = ("multi_modal_projector.", "ctc_head.")  # and every LoRA tensor
SHIPPED = os.path.join(ROOT, "default_model", "weights.safetensors")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trained_dir")
    parser.add_argument("--output", default=SHIPPED, help="default: the shipped default's weights (and its settings' lora)")
    parser.add_argument("--only", choices=["ctc_head"], help="only these tensors (kept in fp32: a few MB)")
    args = parser.parse_args()
    model = SpeechLLMForConditionalGeneration.from_pretrained(args.trained_dir)
    if args.only:
        own = {k: v.float().contiguous() for k, v in model.state_dict().items() if k.startswith(args.only + ".")}
        save_file(own, args.output, metadata={"source": os.path.basename(os.path.normpath(args.trained_dir))})
        print(f"wrote {args.output}: {len(own)} tensors, {os.path.getsize(args.output) / 1e6:.1f} MB")
        return
    own = {k: v.half().contiguous() for k, v in model.state_dict().items() if k.startswith(OWN) or "lora_" in k}
    target = args.output
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    metadata = {"source": os.path.basename(os.path.normpath(args.trained_dir)), "lora": json.dumps(model.config.lora)}
    metadata.update(run_state_metadata(args.trained_dir))
    save_file(own, target, metadata=metadata)
    if os.path.abspath(target) == SHIPPED:
        settings_path = os.path.join(ROOT, "default_model", "settings.json")
        with open(settings_path) as handle:
            settings = json.load(handle)
        settings["lora"] = model.config.lora
        with open(settings_path, "w") as handle:
            json.dump(settings, handle, indent=2)
    print(f"wrote {target}: {len(own)} tensors, {os.path.getsize(target) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
