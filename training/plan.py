"""What a training stage will take at full size, before any GPU is held: parameters, memory, time and data.

    python -m training.plan configs/iwslt2025/stage_a.yaml [--gpus 8] [--nodes 1] [--gpu a100-80g|h100-80g]

Builds the stage's model on the meta device (nothing allocated, no weights read) from the parts' published
config.json, kept in configs/hub/ for the papers' models (any other Hub id or path is read with AutoConfig), and
prints:
- each module's parameters, and which ones the stage trains;
- the model-state memory per GPU under DeepSpeed ZeRO-2/3, with and without CPU offload
  (scripts/estimate_training_memory.py's accounting: activations come on top);
- a paper estimate of one optimizer step and of the stage from its FLOPs and the GPU's peak, at a stated
  utilisation (see `step_flops` for what is counted);
- every data source: a local path exists or not; a Hub id is reached, or one line says it cannot be, with the
  configuration, split and columns the recipe will read.
"""

import argparse
import dataclasses
import functools
import os
import sys

import torch

from configuration_speechllm import SpeechLLMConfig
from training.base_model import KEPT_CONFIGS, parse_model_config

GIB = 1024**3
# Dense bf16 peak of one GPU (FLOP/s), from the vendors' data sheets (SXM parts, no sparsity).
GPU_PEAK_BF16 = {"a100-80g": 312e12, "h100-80g": 989e12}
GPU_MEMORY_GIB = {"a100-80g": 80, "h100-80g": 80}
# Encoder frames per second of audio: 10 ms feature frames, which SeamlessM4T's and Whisper's front ends halve.
ENCODER_FRAMES_PER_SECOND = 50
# Text tokens around the speech in one example (chat template, instruction, answer), and tokens per second of speech
# in a transcript or translation: rough means of the papers' data, stated in the printout.
PROMPT_TOKENS = 40
# Below this, a step's FLOPs no longer say how long it takes (fixed costs per step dominate).
LATENCY_BOUND_STEP = 0.1
TOKENS_PER_SECOND = 3.5


# ---------------------------------------------------------------------------------------------------------------
# The model at full size
# ---------------------------------------------------------------------------------------------------------------


def part_config(name_or_path: str):
    """A part's config: the kept published one for the papers' models, else from the path or the Hub."""
    from transformers import AutoConfig

    kept = os.path.join(KEPT_CONFIGS, name_or_path)
    return AutoConfig.from_pretrained(kept if os.path.isfile(os.path.join(kept, "config.json")) else name_or_path)


def recipe_model_config(recipe) -> SpeechLLMConfig:
    """The SpeechLLMConfig the recipe trains: composed from its parts, or the config of its starting checkpoint."""
    if recipe.model_name_or_path:
        return SpeechLLMConfig.from_pretrained(recipe.model_name_or_path)
    return SpeechLLMConfig(
        encoder_config=part_config(recipe.encoder_name_or_path),
        text_config=part_config(recipe.llm_name_or_path),
        **parse_model_config(recipe.model_config),
    )


def meta_model(config: SpeechLLMConfig, lora: dict | None):
    """The full model on the meta device, LoRA attached where the stage has it."""
    from modeling_speechllm import SpeechLLMForConditionalGeneration

    with torch.device("meta"):
        model = SpeechLLMForConditionalGeneration(config)
        if lora:
            model.enable_lora(**lora)
    return model


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


@dataclasses.dataclass
class ModuleCounts:
    encoder: int
    encoder_layers_used: int  # of the encoder's weights, those the layers up to `encoder_layer` hold (what runs)
    mapper: int
    ctc_head: int
    llm: int  # without LoRA
    lora: int
    embedding: int

    @classmethod
    def of(cls, model) -> "ModuleCounts":
        config = model.config
        lora = count(p for n, p in model.named_parameters() if "lora_" in n)
        encoder = count(model.audio_tower.parameters())
        used = encoder * min(config.encoder_layer, config.encoder_num_layers) / config.encoder_num_layers
        return cls(
            encoder=encoder,
            encoder_layers_used=int(used),
            mapper=count(model.multi_modal_projector.parameters()),
            ctc_head=count(model.ctc_head.parameters()) if model.ctc_head is not None else 0,
            llm=count(model.language_model.parameters()) - lora,
            lora=lora,
            embedding=model.get_input_embeddings().weight.numel(),
        )


def stage_parameters(counts: ModuleCounts, stage: str, trains_ctc_head: bool = False) -> tuple[int, int, int]:
    """(replicated buffer elements, weights held, trainable weights) of a stage. Stage A holds the mapper (and its CTC
    head) and the LLM's embedding table as a buffer that every GPU keeps; B and C hold the whole model."""
    whole = counts.encoder + counts.mapper + counts.ctc_head + counts.llm + counts.lora
    if stage == "mapper":
        trained = counts.mapper + counts.ctc_head
        return counts.embedding, trained, trained
    if stage == "text":
        return 0, whole, counts.lora
    return 0, whole, counts.mapper + counts.lora + (counts.ctc_head if trains_ctc_head else 0)


def per_gpu_bytes(replicated: int, held: int, trainable: int, gpus: int, zero: int, offload: bool) -> float:
    """bf16 mixed precision with AdamW: 2 bytes a weight (frozen or not), +2 for a trainable weight's gradient, +12 for
    its fp32 master copy and two Adam moments. ZeRO-2 partitions gradients and optimizer states over all GPUs; ZeRO-3
    the weights too; offload moves the optimizer states (with ZeRO-3 the weights too) to CPU memory."""
    weights = 0 if (zero == 3 and offload) else 2 * held / (gpus if zero == 3 else 1)
    gradients = 2 * trainable / gpus
    optimizer = 0 if offload else 12 * trainable / gpus
    return 2 * replicated + weights + gradients + optimizer


MEMORY_COLUMNS = [(zero, offload) for zero in (2, 3) for offload in (False, True)]


def memory_row(replicated: int, held: int, trainable: int, gpus: int) -> list[float]:
    """GiB per GPU under ZeRO-2, ZeRO-2 + offload, ZeRO-3, ZeRO-3 + offload."""
    return [per_gpu_bytes(replicated, held, trainable, gpus, zero, offload) / GIB for zero, offload in MEMORY_COLUMNS]


def memory_table_header() -> list[str]:
    return ["| stage | weights held | trainable | ZeRO-2 | ZeRO-2 + offload | ZeRO-3 | ZeRO-3 + offload |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]


def memory_table_line(name: str, replicated: int, held: int, trainable: int, gpus: int) -> str:
    cells = " | ".join(f"{gib:.1f}" for gib in memory_row(replicated, held, trainable, gpus))
    return f"| {name} | {(replicated + held) / 1e9:.2f} B | {trainable / 1e6:.0f} M | {cells} |"


# ---------------------------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------------------------


def example_positions(config: SpeechLLMConfig, seconds: float) -> dict[str, float]:
    """Sequence lengths of one example of `seconds` of speech: encoder frames, mapper input frames, LLM positions."""
    encoder = ENCODER_FRAMES_PER_SECOND * seconds
    mapper = encoder / config.frame_average
    speech = encoder / config.total_downsampling
    text = PROMPT_TOKENS + TOKENS_PER_SECOND * seconds
    return {"encoder": encoder, "mapper": mapper, "speech": speech, "text": text}


def step_flops(counts: ModuleCounts, config: SpeechLLMConfig, stage: str, examples: int, seconds: float) -> float:
    """FLOPs of one optimizer step (2 per weight and position forward, 4 backward: 2 for the activations' gradient and
    2 for the weights'; a frozen module that gradients pass through costs 2 + 2, one they do not pass costs 2).
    Attention's own FLOPs are left out (sequences of a few hundred positions). Stage A reads cached encoder
    features: its encoder pass is paid once per clip, outside the steps (`caching_flops`)."""
    positions = example_positions(config, seconds)
    mapper = 6 * (counts.mapper + counts.ctc_head) * positions["mapper"] / config.mapper_strides[0]
    if stage == "mapper":
        return examples * mapper
    llm = 4 * counts.llm
    if stage == "text":  # the source text stands where the speech was
        return examples * llm * (positions["text"] + TOKENS_PER_SECOND * seconds)
    encoder = 2 * counts.encoder_layers_used * positions["encoder"]
    return examples * (encoder + mapper + llm * (positions["speech"] + positions["text"]))


def caching_flops(counts: ModuleCounts, seconds_of_audio: float) -> float:
    return 2 * counts.encoder_layers_used * ENCODER_FRAMES_PER_SECOND * seconds_of_audio


def duration_text(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def check_source(spec, defaults: dict) -> str:
    """One line on a data source: found locally, reached on the Hub, or not, with what the recipe reads from it."""
    from training.sources import COLUMN_OPTIONS, DataError, looks_like_hub_id, parse_source

    try:
        source = parse_source(spec, **defaults)
    except DataError as error:
        return f"BAD      {error}"
    columns = ", ".join(getattr(source, option) + ("" if getattr(source, option) == target else f" (as {target})")
                        for option, target in COLUMN_OPTIONS.items() if getattr(source, option) is not None)
    columns = columns if source.audio_column else ", ".join(filter(None, ["audio", columns]))
    reads = f"config {source.config}, split {source.split}" + (f", columns {columns}" if columns else "")
    if os.path.exists(source.path):
        return f"found    {source.path}" + ("" if source.is_manifest() else f" ({reads})")
    if not looks_like_hub_id(source.path) or os.path.isdir(source.path.split("/")[0]):  # outputs/x: a local path
        return f"MISSING  {source.path}: make it first (docs/training.md, 'Training at the papers' scale')"
    reached = reach_hub_dataset(source.path)
    if reached is None:
        return f"on Hub   {source.path} ({reads})"
    return f"UNREACHABLE {source.path}: {reached}; the recipe reads {reads}"


@functools.cache
def reach_hub_dataset(dataset_id: str) -> str | None:
    """None when the Hub answers for the dataset, else why not, in a few words."""
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(dataset_id, timeout=10)
        return None
    except Exception as error:  # offline mode, no network, 404, gated: each says why in its first line
        return f"{type(error).__name__}: {str(error).splitlines()[0][:120]}" if str(error) else type(error).__name__


def checkpoint_line(name: str, path: str | None) -> str | None:
    if not path:
        return None
    state = "found   " if os.path.exists(path) else "not yet "
    return f"{state} {path} ({name}: an earlier stage's output)"


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
    config: SpeechLLMConfig
    counts: ModuleCounts
    stage: str
    replicated: int
    held: int
    trainable: int
    trains_ctc_head: bool


def plan_stage(recipe, args) -> Plan:
    config = recipe_model_config(recipe)
    lora = None
    if recipe.stage != "mapper" and not recipe.task_agnostic:
        lora = {"r": recipe.lora_r, "lora_alpha": recipe.lora_alpha, "lora_dropout": recipe.lora_dropout}
    counts = ModuleCounts.of(meta_model(config, lora))
    joint_ctc = recipe.joint_ctc_weight if recipe.joint_ctc_weight is not None else config.joint_ctc_weight
    trains_ctc_head = counts.ctc_head > 0 and (recipe.stage == "mapper" or (recipe.stage == "joint" and joint_ctc > 0))
    return Plan(config, counts, recipe.stage, *stage_parameters(counts, recipe.stage, trains_ctc_head), trains_ctc_head)


def print_plan(path: str, recipe, args, plan: Plan, gpus: int, gpu: str, utilisation: float, seconds: float):
    counts, config = plan.counts, plan.config
    print(f"{path}: stage {plan.stage} ({recipe.encoder_name_or_path or recipe.model_name_or_path} → "
          f"{recipe.llm_name_or_path or 'its LLM'}), {gpus} × {gpu}\n")
    print("| module | parameters | trained in this stage |\n| --- | ---: | --- |")
    trained = {"mapper": ("mapper",), "text": ("lora",), "joint": ("mapper", "lora")}[plan.stage]
    trained += ("ctc head",) if plan.trains_ctc_head else ()
    rows = [("speech encoder", counts.encoder, "encoder"), ("SpeechMapper", counts.mapper, "mapper"),
            ("CTC head", counts.ctc_head, "ctc head"), ("LLM", counts.llm, "llm"), ("LoRA", counts.lora, "lora")]
    not_loaded = {"encoder": "not loaded: its features are cached once", "llm": "its embedding table only (the targets)"}
    for name, number, key in rows:
        if number:
            state = "yes" if key in trained else (not_loaded.get(key, "frozen") if plan.stage == "mapper" else "frozen")
            print(f"| {name} | {number / 1e6:,.1f} M | {state} |")
    print(f"\nSpeechMapper: {counts.mapper / 1e6:.1f} M parameters (widths {config.mapper_widths}, strides "
          f"{config.mapper_strides}, {config.mapper_layers_per_block} layers a block, into the LLM's {config.text_config.hidden_size})\n")
    print(f"model-state memory per GPU (GiB), {gpus} GPUs in all, bf16 + AdamW; activations not included")
    print("\n".join(memory_table_header()))
    print(memory_table_line(f"{plan.stage} (this config)", plan.replicated, plan.held, plan.trainable, gpus))

    accumulation = args.gradient_accumulation_steps
    examples = args.per_device_train_batch_size * accumulation * gpus
    flops = step_flops(counts, config, plan.stage, examples, seconds)
    rate = gpus * GPU_PEAK_BF16[gpu] * utilisation
    step = flops / rate
    print(f"\ntime, on paper: {examples} examples a step ({args.per_device_train_batch_size} a GPU × {accumulation} "
          f"accumulated × {gpus} GPUs) of {seconds:g} s of speech each, {flops / 1e15:.2f} PFLOP a step; at "
          f"{utilisation:.0%} of the {gpu}'s {GPU_PEAK_BF16[gpu] / 1e12:.0f} TFLOP/s bf16 peak:")
    print(f"  one step ≈ {duration_text(step)}; {args.max_steps:,} steps ≈ {duration_text(step * args.max_steps)}")
    if step < LATENCY_BOUND_STEP:
        print(f"  (a step of under {duration_text(LATENCY_BOUND_STEP)} of FLOPs is bound by latency — data loading, kernel "
              "launches, the optimizer — not by FLOPs: take this as a floor, and the papers' own times in "
              "docs/training.md as the likelier figure)")
    if plan.stage == "mapper":
        print(f"  + caching the encoder features, once a clip however many epochs: ≈ "
              f"{duration_text(caching_flops(counts, 1000 * 3600) / rate)} for every 1,000 h of audio")
    print("  (FLOPs: 6 a weight and position where trained, 4 where frozen but back-propagated through, 2 forward "
          "only; attention's own FLOPs left out)")
    from train import source_defaults

    print("\ndata:")
    for split, specs in ((recipe.train_split, recipe.train_file), (recipe.eval_split, recipe.eval_file or [])):
        for spec in specs:
            print("  " + check_source(spec, source_defaults(recipe, split)))
    for line in (checkpoint_line("mapper", recipe.mapper_checkpoint), checkpoint_line("LoRA", recipe.lora_checkpoint)):
        if line:
            print("  " + line)


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a train.py YAML/JSON config (e.g. configs/iwslt2026/stage_c.yaml)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpu", choices=sorted(GPU_PEAK_BF16), default="h100-80g")
    parser.add_argument("--utilisation", type=float, default=0.35,
                        help="the share of the bf16 peak assumed reached (model FLOPs utilisation)")
    parser.add_argument("--seconds_per_example", type=float, default=10.0, help="mean speech per example")
    args = parser.parse_args(argv)
    from train import parse_arguments

    recipe, training_args = parse_arguments([args.config, "--report_to", "none"])
    gpus = args.gpus * args.nodes
    try:
        plan = plan_stage(recipe, training_args)
    except OSError as error:  # a starting checkpoint not built yet, or a part's config neither kept nor reachable
        raise SystemExit(f"training.plan: cannot read the model's config ({str(error).splitlines()[0]}); build the "
                         "starting checkpoint first, or name the parts (encoder_name_or_path, llm_name_or_path)") from None
    print_plan(args.config, recipe, training_args, plan, gpus, args.gpu, args.utilisation, args.seconds_per_example)
    return plan


if __name__ == "__main__":
    sys.exit(main() and 0)
