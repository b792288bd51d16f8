"""Keep the project's own trained weights of a run (SpeechMapper + LoRA, fp16) as default_model/weights.safetensors.

    python scripts/export_default_weights.py outputs/default-stage-c

The real parts (Whisper, SmolLM2) are not copied: scripts/build_default_model.py rebuilds them from pip packages.
"""

import argparse
import json
import os
import sys

from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modeling_speechllm import SpeechLLMForConditionalGeneration  # noqa: E402

OWN = ("multi_modal_projector.", "lora_")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trained_dir")
    args = parser.parse_args()
    model = SpeechLLMForConditionalGeneration.from_pretrained(args.trained_dir)
    own = {k: v.half().contiguous() for k, v in model.state_dict().items() if k.startswith(OWN[0]) or OWN[1] in k}
    target = os.path.join(ROOT, "default_model", "weights.safetensors")
    save_file(own, target, metadata={"source": os.path.basename(os.path.normpath(args.trained_dir))})
    settings_path = os.path.join(ROOT, "default_model", "settings.json")
    with open(settings_path) as handle:
        settings = json.load(handle)
    settings["lora"] = model.config.lora
    with open(settings_path, "w") as handle:
        json.dump(settings, handle, indent=2)
    print(f"wrote {target}: {len(own)} tensors, {os.path.getsize(target) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
