"""Train speechllm in the papers' three stages, on the HF Trainer (DeepSpeed ZeRO through accelerate).

    accelerate launch train.py --stage mapper --model_name_or_path CKPT --train_file asr.jsonl --output_dir out/a
    accelerate launch train.py --stage text   --model_name_or_path CKPT --train_file mt_qa.jsonl --output_dir out/b
    accelerate launch train.py --stage joint  --model_name_or_path CKPT --mapper_checkpoint out/a \\
        --lora_checkpoint out/b --train_file all.jsonl --output_dir out/c
    python train.py run.yaml          # every argument from one YAML/JSON file
    python train.py run.yaml --max_steps 40 --output_dir out/try   # ... and flags after it override the file's
    accelerate launch --use_deepspeed --deepspeed_config_file ds_config.json --num_processes 2 train.py ...

Every TrainingArguments flag works (--max_steps, --per_device_train_batch_size, --resume_from_checkpoint, ...);
flags not given take the stage's defaults from the papers (STAGE_DEFAULTS).
"""

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
import transformers
from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

import pipeline_speechllm  # noqa: F401  (registers the project's classes: no remote-code prompt for our own code)
from modeling_speechllm import SpeechLLMForConditionalGeneration, read_checkpoint_tensors
from processing_speechllm import SpeechLLMProcessor
from training.checkpoints import export_mapper_checkpoint
from training.data import (
    SPEECH_TASKS,
    DataError,
    InstructionCollator,
    TaskBatchSampler,
    apply_source_weights,
    build_examples,
    draw_augmentation,
    example_tasks,
    keep_usable_rows,
    parse_probabilities,
    read_manifests,
    refuse_augmentation,
    require_sampled_tasks,
)
from training.mapper_pretraining import SpeechMapperForPretraining, StageACollator, fill_feature_cache
from training.model_card import write_model_card
from training.base_model import compose_base_model, parse_model_config
from training.sources import parse_source, with_stand_in
from training.threads import use_threads
from training.trainer import SpeechLLMTrainer, plot_loss_curves
from training.zero import whole_tensors_while_building

logger = logging.getLogger("speechllm.train")

STAGES = ("mapper", "text", "joint")
# The papers' settings, used for every flag the user does not give (SpeechMapper; IWSLT 2026).
STAGE_DEFAULTS = {
    "mapper": {"learning_rate": 1e-4, "lr_scheduler_type": "cosine", "warmup_steps": 0.05, "train_sampling_strategy": "group_by_length"},
    "text": {"learning_rate": 3e-4, "weight_decay": 0.1},
    "joint": {"learning_rate": 5e-5, "max_steps": 1000, "lr_scheduler_type": "constant"},
}
COMMON_DEFAULTS = {"remove_unused_columns": False, "logging_steps": 10, "report_to": "tensorboard"}


@dataclass
class RecipeArguments:
    stage: str = field(metadata={"help": "mapper (A) | text (B) | joint (C)", "choices": STAGES})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "a speechllm checkpoint directory (e.g. scripts/build_from_parts.py); or give "
                                        "--encoder_name_or_path and --llm_name_or_path to compose one from its parts"}
    )
    encoder_name_or_path: str | None = field(
        default=None, metadata={"help": "the pretrained speech encoder (Hub id or path) to compose the model from"}
    )
    llm_name_or_path: str | None = field(default=None, metadata={"help": "the pretrained causal LM (Hub id or path), likewise"})
    model_config: str | None = field(
        default=None,
        metadata={"help": "SpeechLLMConfig values of the composed model, as a JSON object (a mapping in a YAML file); "
                          "given as a flag after a file, its keys override the file's (training/base_model.py)"},
    )
    stand_in: list[str] | None = field(
        default=None,
        metadata={"help": "SOURCE=PATH ...: read PATH wherever a data source names SOURCE (a Hub id or path), its other "
                          "options kept: a recipe tried on small local copies of its corpora"},
    )
    train_file: list[str] | None = field(
        default=None,
        metadata={"help": "data sources, mixed: a manifest (.jsonl/.csv/.tsv), a dataset directory (saved, audiofolder, "
                          "parquet), a Hub id, or a JSON object naming one with its options (training/sources.py)"}
    )
    eval_file: list[str] | None = field(default=None, metadata={"help": "same forms as train_file"})
    dataset_config: str | None = field(default=None, metadata={"help": "the datasets' configuration (load_dataset's name)"})
    train_split: str = field(default="train", metadata={"help": "the split of a dataset source that trains"})
    eval_split: str = field(default="test", metadata={"help": "the split of a dataset source that evaluates"})
    audio_column: str | None = field(default=None, metadata={"help": "the sources' audio column (default: audio)"})
    text_column: str | None = field(default=None, metadata={"help": "the sources' transcript column (default: transcript)"})
    translation_column: str | None = field(default=None, metadata={"help": "the sources' translation column"})
    question_column: str | None = field(default=None, metadata={"help": "the sources' question column"})
    answer_column: str | None = field(default=None, metadata={"help": "the sources' answer column"})
    streaming: bool = field(default=False, metadata={"help": "read dataset sources as a stream (with max_rows in a source)"})
    mapper_checkpoint: str | None = field(default=None, metadata={"help": "joint: take the SpeechMapper from this stage-A output"})
    lora_checkpoint: str | None = field(default=None, metadata={"help": "joint: take the LoRA adapters from this stage-B output"})
    feature_cache_dir: str | None = field(default=None, metadata={"help": "mapper: encoder-feature cache (default ~/.cache/speechllm/features)"})
    stage_a_loss: str | None = field(default=None, metadata={"help": "mse_cosine | l1_cosine_contrastive_ctc"})
    ctc_head: str | None = field(
        default=None, metadata={"help": "the CTC head on mapper block 1: embedding (compact) | vocabulary (2026) | none"}
    )
    joint_ctc_weight: float | None = field(
        default=None, metadata={"help": "text, joint: weight of the CTC head's loss beside the CE (keeps it trained)"}
    )
    train_only_ctc_head: bool = field(
        default=False,
        metadata={"help": "mapper: fit only the CTC head, on the checkpoint's frozen mapper (CTC loss alone): gives a "
                          "trained model a head for joint CTC/LLM decoding without changing what the LLM reads"},
    )
    loss_vocabulary_sample: int | None = field(
        default=None, metadata={"help": "mapper, 2026 loss: contrastive/CTC over the targets + N random vocabulary rows"}
    )
    loss_sigma: float | None = field(default=None, metadata={"help": "weight σ of the MSE term in (1−σ)·CE + σ·MSE"})
    mask_time_prob: float | None = field(
        default=None, metadata={"help": "mapper, joint: SpecAugment time masks on the mapper's input frames while training"}
    )
    mask_feature_prob: float | None = field(default=None, metadata={"help": "mapper, joint: SpecAugment feature masks, likewise"})
    mapper_learning_rate: float = field(default=5e-5, metadata={"help": "joint: learning rate of the SpeechMapper"})
    lora_learning_rate: float = field(default=1e-5, metadata={"help": "joint: learning rate of the LoRA adapters"})
    task_sampling: bool = field(default=True, metadata={"help": "joint: one task per batch, drawn with task_probabilities"})
    task_probabilities: str = field(default="asr=0.3,st=0.4,sqa=0.3")
    st_language_probabilities: str = field(default="de=0.4,it=0.4,zh=0.2")
    pair_st_with_mt: bool = field(default=True, metadata={"help": "joint: follow each ST batch by the MT batch of its rows"})
    task_agnostic: bool = field(default=False, metadata={"help": "joint: ASR data only, CE + σ·MSE with σ=0.9, no LoRA"})
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "stop when the eval loss has not improved for N evaluations (needs --eval_file, "
                          "--load_best_model_at_end true and save_steps = eval_steps); the best checkpoint is kept"},
    )
    text_in_speech_slot: bool = field(
        default=False,
        metadata={"help": "text: the transcript goes in the speech slot (its tokens + mapper pads, as a perfect stage-A "
                          "mapper writes it) instead of the text prompt, and ASR rows train `read` (transcribe it)"},
    )
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    threads: int | None = field(
        default=None, metadata={"help": "CPU threads (default: OMP_NUM_THREADS, else every core): a share for each job "
                                        "that runs beside another (training/threads.py)"}
    )


# ---------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------


def parse_arguments(argv: list[str]) -> tuple[RecipeArguments, TrainingArguments]:
    """Command-line flags, or a YAML/JSON file of them followed by flags that override it; the stage's defaults fill
    every flag not given."""
    if argv and argv[0].endswith((".yaml", ".yml", ".json")):
        values = read_config_file(argv[0])
        argv = argv[1:]
        if "--model_config" in argv and values.get("model_config") is not None:  # a flag's keys override the file's
            at = argv.index("--model_config")
            values["model_config"] = {**parse_model_config(values["model_config"]), **parse_model_config(argv[at + 1])}
            argv = argv[:at] + argv[at + 2 :]
        argv = file_as_flags(values) + argv
    argv = argv + cpu_flags_for_bf16(argv)
    parser = HfArgumentParser((RecipeArguments, TrainingArguments))
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--stage")
    stage = probe.parse_known_args(argv)[0].stage
    if stage is None and {"-h", "--help"} & set(argv):
        parser.parse_args_into_dataclasses(argv)  # prints the help and exits
    check_stage(stage)
    parser.set_defaults(**COMMON_DEFAULTS, **STAGE_DEFAULTS[stage])
    return parser.parse_args_into_dataclasses(argv)


def cpu_flags_for_bf16(argv: list[str]) -> list[str]:
    """["--use_cpu", "True"] where bf16 is asked for on a machine with no GPU and use_cpu is not given: a GPU recipe
    (bf16: true) then runs here as it is (TrainingArguments refuses bf16 without a GPU unless told use_cpu)."""
    probe = argparse.ArgumentParser(add_help=False)
    probe.add_argument("--bf16", default="False")
    probe.add_argument("--use_cpu", default=None)
    given = probe.parse_known_args(argv)[0]
    if given.bf16.lower() in ("true", "1", "yes") and given.use_cpu is None and not torch.cuda.is_available():
        return ["--use_cpu", "True"]
    return []


def file_as_flags(values: dict) -> list[str]:
    """{"max_steps": 40, "bf16": True} → ["--max_steps", "40", "--bf16", "True"] (flags given after them win); a
    mapping in a list (a data source with options) becomes its JSON."""
    flags = []
    for name, value in values.items():
        if value is not None:
            flags += [f"--{name}", *(map(flag_text, value) if isinstance(value, list) else [flag_text(value)])]
    return flags


def flag_text(value) -> str:
    return json.dumps(value) if isinstance(value, dict) else str(value)


def source_defaults(recipe, split: str) -> dict:
    """The run's data options, for every source that does not set its own (training/sources.py)."""
    names = ("audio_column", "text_column", "translation_column", "question_column", "answer_column", "streaming")
    return {"config": recipe.dataset_config, "split": split, **{name: getattr(recipe, name) for name in names}}


def read_config_file(path: str) -> dict:
    with open(path) as handle:
        if path.endswith(".json"):
            return json.load(handle)
        import yaml

        return yaml.safe_load(handle)


def resolve_starting_checkpoint(recipe, args) -> None:
    """`model_name_or_path`, composed from the recipe's parts where it names parts instead (training/base_model.py)."""
    parts = (recipe.encoder_name_or_path, recipe.llm_name_or_path)
    if recipe.model_name_or_path and any(parts):
        raise SystemExit("train.py: give --model_name_or_path, or --encoder_name_or_path and --llm_name_or_path, not both")
    if not recipe.model_name_or_path:
        if not all(parts):
            raise SystemExit("train.py: give --model_name_or_path (a speechllm checkpoint), or both --encoder_name_or_path "
                             "and --llm_name_or_path to compose one")
        dtype = "bfloat16" if args.bf16 else "float32"
        with args.main_process_first(local=True, desc="composing the base checkpoint"):
            recipe.model_name_or_path = compose_base_model(
                *parts, parse_model_config(recipe.model_config), args.output_dir, dtype
            )


def put_stand_ins_in_place(recipe) -> None:
    """The data sources, each one `--stand_in` names replaced by its local copy (its other options kept)."""
    if recipe.train_file is None:
        raise SystemExit("train.py: --train_file is required (one or more data sources)")
    stand_ins = dict(parse_stand_in(entry) for entry in recipe.stand_in or [])
    recipe.train_file = [with_stand_in(spec, stand_ins) for spec in recipe.train_file]
    recipe.eval_file = [with_stand_in(spec, stand_ins) for spec in recipe.eval_file] if recipe.eval_file else None


def parse_stand_in(entry: str) -> tuple[str, str]:
    source, sep, path = entry.partition("=")
    if not (sep and source and path):
        raise SystemExit(f"train.py: --stand_in takes SOURCE=PATH (got {entry!r})")
    return source, path


def check_stage(stage):
    if stage not in STAGES:
        raise SystemExit(f"train.py: --stage must be one of {', '.join(STAGES)} (got {stage!r})")


# ---------------------------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------------------------


def mapper_stage(recipe, args, processor) -> dict:
    """Stage A: cached encoder features → SpeechMapper → LLM embedding rows (no LLM layers)."""

    def usable_clips(specs, split, name, weighted):
        with args.main_process_first(desc=f"checking {name}"):
            rows = read_manifests(specs, **source_defaults(recipe, split))
            refuse_augmentation(rows, "in stage A, which caches each clip's encoder features once")
            rows = keep_usable_rows(rows, lambda row: ("asr",) if row["audio_source"] else (), processor, True, name)
        rows = first_of_each_clip(rows)
        return apply_source_weights(rows, args.seed) if weighted else rows

    if args.label_names is None:  # the Trainer computes an eval loss only for inputs it knows as labels
        args.label_names = ["transcript_ids"]
    # The data first: a manifest with no usable row stops the run before any model is built.
    # the sources' weights make the training mix; every eval row counts once
    train_rows = usable_clips(recipe.train_file, recipe.train_split, "train", weighted=True)
    eval_rows = usable_clips(recipe.eval_file, recipe.eval_split, "eval", weighted=False) if recipe.eval_file else None
    model = SpeechMapperForPretraining.from_speechllm_checkpoint(recipe.model_name_or_path, **config_overrides(recipe))
    if recipe.train_only_ctc_head:
        model.fit_ctc_head_only()
    cache_dir = recipe.feature_cache_dir or os.path.expanduser("~/.cache/speechllm/features")

    def with_features(rows, name):
        with args.main_process_first(desc=f"caching the encoder features of {name}"):
            paths = fill_feature_cache(rows["audio_source"], recipe.model_name_or_path, model.config, processor, cache_dir)
        rows = rows.add_column("feature_path", paths)
        return rows.add_column("length", [int(d * 100) for d in rows["duration"]])

    return {
        "model": model,
        "train_dataset": with_features(train_rows, "train"),
        "eval_dataset": with_features(eval_rows, "eval") if eval_rows is not None else None,
        "data_collator": StageACollator(processor.tokenizer),
    }


def config_overrides(recipe, **stage_values) -> dict:
    """The model-config values this run sets (flags given, and the stage's own such as σ); the rest stay as saved."""
    names = ("stage_a_loss", "ctc_head", "joint_ctc_weight", "loss_vocabulary_sample", "mask_time_prob", "mask_feature_prob")
    values = {**{name: getattr(recipe, name) for name in names}, **stage_values}
    return {name: value for name, value in values.items() if value is not None}


def first_of_each_clip(rows):
    """One row per (audio, transcript): SQA rows usually reuse an ASR row's clip, which stage A must not weigh twice."""
    seen, keep = set(), []
    for index, key in enumerate(zip(rows["audio_source"], rows["transcript"])):
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return rows.select(keep)


def instruction_stage(recipe, args, processor) -> dict:
    """Stage B (text-only LoRA) or C (joint instruction tuning) on the full model."""
    joint = recipe.stage == "joint"
    if recipe.text_in_speech_slot and recipe.stage != "text":
        raise SystemExit("train.py: --text_in_speech_slot is a stage-B (--stage text) option")
    sigma = 0.9 if recipe.task_agnostic and recipe.loss_sigma is None else recipe.loss_sigma
    probabilities = {"asr": 1.0} if recipe.task_agnostic else parse_probabilities(recipe.task_probabilities)
    add_asr = joint and probabilities.get("asr", 0) > 0

    def tasks_for_row(row):
        tasks = example_tasks(row, recipe.stage, read=recipe.text_in_speech_slot)
        if recipe.task_agnostic:
            return ("asr",)
        return tasks + ("asr",) if add_asr and row["task"] in SPEECH_TASKS and row["transcript"] else tasks

    def prepare(specs, split, name, weighted):
        with args.main_process_first(desc=f"checking {name}"):
            rows = read_manifests(specs, **source_defaults(recipe, split))
            rows = keep_usable_rows(rows, tasks_for_row, processor, joint and bool(sigma), name)
        if recipe.task_agnostic:
            rows = rows.map(lambda row: {"task": "asr"})
        if weighted:  # the sources' weights make the training mix; every eval row counts once
            rows = apply_source_weights(rows, args.seed)
        rows = draw_augmentation(rows, args.seed)
        return build_examples(rows, recipe.stage, add_asr=add_asr, pair_text_twins=joint and recipe.pair_st_with_mt,
                              read=recipe.text_in_speech_slot)

    # The data first: unusable data stops the run before the model is loaded.
    train_examples = prepare(recipe.train_file, recipe.train_split, "train", weighted=True)
    if recipe.stage == "text" or recipe.task_sampling:
        require_sampled_tasks(train_examples, probabilities, recipe.stage, "train")
    eval_examples = prepare(recipe.eval_file, recipe.eval_split, "eval", weighted=False) if recipe.eval_file else None
    sampler = None
    if joint and recipe.task_sampling:
        sampler = TaskBatchSampler(
            train_examples,
            args.per_device_train_batch_size,
            probabilities,
            parse_probabilities(recipe.st_language_probabilities),
            num_processes=args.world_size,
            seed=args.seed,
        )
    with whole_tensors_while_building():
        model = SpeechLLMForConditionalGeneration.from_pretrained(
            recipe.model_name_or_path, **config_overrides(recipe, loss_sigma=sigma)
        )
        if recipe.mapper_checkpoint:
            load_tensors(model, recipe.mapper_checkpoint, lambda key: key.startswith("multi_modal_projector."), "SpeechMapper")
        attach_lora(model, recipe)
    model.multi_modal_projector.requires_grad_(joint)
    keeps_ctc = model.ctc_head is not None and model.config.joint_ctc_weight > 0
    if model.ctc_head is not None:
        model.ctc_head.requires_grad_(joint and keeps_ctc)  # trained beside the CE where asked, else left as it is
    groups = {"multi_modal_projector": recipe.mapper_learning_rate, "lora_": recipe.lora_learning_rate} if joint else {}
    if joint and keeps_ctc:
        groups["ctc_head"] = recipe.mapper_learning_rate
    return {
        "model": model,
        "train_dataset": train_examples,
        "eval_dataset": eval_examples,
        "data_collator": InstructionCollator(processor, slot_pad_token(recipe, model, processor)),
        "batch_sampler": sampler,
        "group_learning_rates": groups,
    }


def slot_pad_token(recipe, model, processor) -> str | None:
    if not recipe.text_in_speech_slot:
        return None
    return processor.tokenizer.convert_ids_to_tokens(model.config.mapper_pad_token_id)


def load_tensors(model, checkpoint: str, wanted, what: str):
    """Copy the model's tensors whose names pass `wanted` from another checkpoint (the stage-A mapper, LoRA)."""
    keys = [key for key in model.state_dict() if wanted(key)]
    model.load_state_dict(read_checkpoint_tensors(checkpoint, keys), strict=False)
    logger.warning("loaded the %s (%d tensors) from %s", what, len(keys), checkpoint)


def attach_lora(model, recipe):
    """Stage B always trains LoRA; stage C keeps stage B's adapters (or starts new ones), unless task-agnostic."""
    if recipe.lora_checkpoint:
        from configuration_speechllm import SpeechLLMConfig

        settings = SpeechLLMConfig.from_pretrained(recipe.lora_checkpoint).lora
        if not settings:
            raise ValueError(f"{recipe.lora_checkpoint} has no LoRA adapters (its config has no `lora`)")
        if not model.config.lora:
            model.enable_lora(**settings)
        load_tensors(model, recipe.lora_checkpoint, lambda key: "lora_" in key, "LoRA adapters")
    elif not model.config.lora and not recipe.task_agnostic:
        model.enable_lora(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout)
    for name, param in model.language_model.named_parameters():
        param.requires_grad = "lora_" in name and not recipe.task_agnostic


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def cpu_has_fast_bf16() -> bool:
    return pipeline_speechllm.native_cpu_dtype() == torch.bfloat16


def fall_back_from_emulated_bf16(args: TrainingArguments) -> None:
    """bf16 autocast on a CPU without AVX-512 is emulated by oneDNN: ~20x slower than fp32 (a 896x4864 linear, forward
    and backward, on an AVX2 EPYC), where an AMX CPU runs it ~1.5-3x faster. The configs ask for bf16; on such a CPU
    train in fp32 instead (same losses, more precise), and say so."""
    if args.bf16 and args.device.type == "cpu" and not cpu_has_fast_bf16():
        logger.warning("bf16 asked for, but this CPU has no AVX-512 (bf16 would be emulated, ~20x slower): training in fp32")
        args.bf16 = False
        args.mixed_precision = "no"  # what the Trainer's Accelerator reads: set from bf16 when the arguments were made


def main(argv: list[str] | None = None, callbacks=None):
    recipe, args = parse_arguments(sys.argv[1:] if argv is None else argv)
    use_threads(recipe.threads, "train.py")
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s: %(message)s", level=logging.WARNING)
    fall_back_from_emulated_bf16(args)
    transformers.utils.logging.set_verbosity_warning()
    transformers.set_seed(args.seed)  # before any weight is created: new LoRA adapters draw from the RNG
    resolve_starting_checkpoint(recipe, args)
    put_stand_ins_in_place(recipe)
    processor = SpeechLLMProcessor.from_pretrained(recipe.model_name_or_path)
    parts = mapper_stage(recipe, args, processor) if recipe.stage == "mapper" else instruction_stage(recipe, args, processor)
    # the whole processor, so that every checkpoint-N directory also loads in the pipeline
    callbacks = list(callbacks or [])
    if recipe.early_stopping_patience:
        if not (recipe.eval_file and args.load_best_model_at_end):
            raise SystemExit("train.py: --early_stopping_patience needs --eval_file and --load_best_model_at_end true "
                             "(with --eval_steps equal to --save_steps)")
        callbacks.append(transformers.EarlyStoppingCallback(early_stopping_patience=recipe.early_stopping_patience))
    training = training_info(recipe, args)
    callbacks.append(ModelCardCallback(training))
    trainer = on_the_hub(lambda: SpeechLLMTrainer(args=args, processing_class=processor, callbacks=callbacks, **parts), args)

    resume = args.resume_from_checkpoint
    if resume in ("latest", "true", "True"):  # the newest checkpoint-N, or a fresh start when there is none yet
        resume = get_last_checkpoint(args.output_dir) if os.path.isdir(args.output_dir) else None
        if resume is None:
            logger.warning("no checkpoint in %s yet: starting fresh", args.output_dir)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        if recipe.stage == "mapper":
            export_mapper_checkpoint(recipe.model_name_or_path, args.output_dir)
        processor.save_pretrained(args.output_dir)
        write_model_card(args.output_dir, training)
        plot = plot_loss_curves(trainer.state.log_history, os.path.join(args.output_dir, "loss_curves.png"))
        logger.warning("saved %s (stage %s)%s", args.output_dir, recipe.stage, f"; loss curves in {plot}" if plot else "")
    trainer.accelerator.wait_for_everyone()
    if args.push_to_hub:
        on_the_hub(lambda: trainer.push_to_hub(commit_message=f"speechllm stage {recipe.stage}"), args)
    # Destroy the process group before the interpreter exits: a launched rank that exited with it alive (ZeRO-3, rank 1
    # having waited while rank 0 exported) could abort in teardown ("terminate called without an active exception").
    trainer.accelerator.end_training()
    return trainer


def training_info(recipe, args) -> dict:
    """What made a checkpoint, for its model card: the stage, where it started, its data and main settings."""
    info = {"stage": recipe.stage, "started_from": recipe.model_name_or_path, "max_steps": args.max_steps,
            "per_device_train_batch_size": args.per_device_train_batch_size, "seed": args.seed}
    if recipe.stage == "joint":
        info.update(mapper_learning_rate=recipe.mapper_learning_rate, lora_learning_rate=recipe.lora_learning_rate,
                    task_probabilities=recipe.task_probabilities, st_language_probabilities=recipe.st_language_probabilities)
    else:
        info["learning_rate"] = args.learning_rate
    info["datasets"] = [parse_source(spec, **source_defaults(recipe, recipe.train_split)).name for spec in recipe.train_file]
    return info


class ModelCardCallback(transformers.TrainerCallback):
    """A model card in every checkpoint-N as well: each is a loadable checkpoint that may be shared."""

    def __init__(self, training: dict):
        self.training = training

    def on_save(self, args, state, control, **kwargs):
        checkpoint = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if state.is_world_process_zero and is_speechllm_checkpoint(checkpoint):
            write_model_card(checkpoint, {**self.training, "steps_done": state.global_step})


def is_speechllm_checkpoint(path: str) -> bool:
    config = os.path.join(path, "config.json")
    if not os.path.exists(config):
        return False
    with open(config) as handle:
        return json.load(handle).get("model_type") == "speechllm"


def on_the_hub(step, args):
    """Run a step that talks to the Hub (--push_to_hub); without the network, one line that says so."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        return step()
    except (OfflineModeIsEnabled, HfHubHTTPError, OSError) as error:
        if not args.push_to_hub:
            raise
        raise SystemExit(f"train.py: --push_to_hub cannot reach the Hugging Face Hub for {args.hub_model_id or args.output_dir} "
                         f"({type(error).__name__}: {str(error).splitlines()[0]}); train without --push_to_hub, then "
                         "push the saved directory with `hf upload` where there is a network") from None


def cli():
    """`python train.py ...` and the `speechllm-train` console script."""
    try:
        main()
    except DataError as error:  # unusable data: the message says which source and rows, and the fix; no traceback
        raise SystemExit(f"train.py: {error}")


if __name__ == "__main__":
    cli()
