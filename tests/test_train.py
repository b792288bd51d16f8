"""train.py: the three stages on the tiny checkpoint, data checks, task sampling, resume (DeepSpeed: test_zero.py)."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
import transformers
from conftest import ROOT, make_audio

import train
from modeling_speechllm import SpeechLLMForConditionalGeneration
from training.data import TaskBatchSampler, build_examples, keep_usable_rows, read_rows

PROBES = os.path.join(ROOT, "tests", "train_with_probes.py")


def run_stage(stage, checkpoint, manifest, output_dir, *extra, steps=12):
    argv = [
        "--stage", stage, "--model_name_or_path", checkpoint, "--train_file", manifest, "--output_dir", str(output_dir),
        "--max_steps", str(steps), "--per_device_train_batch_size", "4", "--logging_steps", "1", "--report_to", "none",
        "--save_strategy", "no", "--seed", "0", *extra,
    ]
    return train.main(argv)


def losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_bad_rows_are_reported_by_id_and_counted(manifest, seamless_checkpoint, caplog):
    from processing_speechllm import SpeechLLMProcessor

    processor = SpeechLLMProcessor.from_pretrained(seamless_checkpoint)
    with caplog.at_level(logging.WARNING, logger="speechllm.data"):
        rows = keep_usable_rows(read_rows(manifest), lambda row: ("asr",) if row["audio_source"] else (), processor, True, "train")
    assert sorted(rows["id"]) == sorted(f"good{i}" for i in range(8))
    text = caplog.text
    assert "skipping row bad-missing: audio: file" in text and "does not exist" in text
    assert "skipping row bad-empty: audio has 0 samples" in text
    assert "skipping row bad-text: audio: cannot decode audio" in text
    assert "text0" not in text  # a text-only row is not bad, just not for this stage
    assert "train: 8 of 12 rows usable, 3 skipped as bad (1 audio file does not exist, 1 empty audio, 1 not an audio file), 1 with no task for this stage" in text


def test_stage_mapper_loss_falls_reuses_the_cache_and_exports_a_full_checkpoint(
    seamless_checkpoint, manifest, tmp_path, caplog
):
    extra = ["--feature_cache_dir", str(tmp_path / "cache"), "--learning_rate", "1e-3", "--warmup_steps", "0"]
    with caplog.at_level(logging.WARNING, logger="speechllm.stage_a"):
        trainer = run_stage("mapper", seamless_checkpoint, manifest, tmp_path / "a", *extra, steps=30)
    assert "0 of 8 clips already cached, computing 8" in caplog.text
    curve = losses(trainer)
    # loss = 5·MSE_words + 5·MSE_pad − 100·cosine: the cosine term must climb well above its random start
    assert np.mean(curve[-5:]) < curve[0] - 20, curve
    caplog.clear()
    copy = tmp_path / "same-weights-elsewhere"  # a rebuilt, identical checkpoint: the cache is keyed by content
    shutil.copytree(seamless_checkpoint, copy)
    with caplog.at_level(logging.WARNING, logger="speechllm.stage_a"):
        run_stage("mapper", str(copy), manifest, tmp_path / "a2", *extra, steps=1)
    assert "8 of 8 clips already cached, computing 0" in caplog.text

    exported = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "a")
    trained = trainer.model.multi_modal_projector.state_dict()
    for key, value in exported.multi_modal_projector.state_dict().items():
        assert torch.equal(value, trained[key]), key
    base = SpeechLLMForConditionalGeneration.from_pretrained(seamless_checkpoint)
    assert torch.equal(exported.language_model.lm_head.weight, base.language_model.lm_head.weight)
    assert (tmp_path / "a" / "loss_curves.png").stat().st_size > 1000


def test_feature_cache_batches_by_length_so_a_short_clip_is_encoded_as_alone(tiny_whisper, tmp_path):
    """Whisper attends over padding: a short clip batched with a long one would be cached unlike itself alone."""
    from processing_speechllm import load_audio
    from training.mapper_pretraining import fill_feature_cache, load_encoder

    model, processor = tiny_whisper
    checkpoint = str(tmp_path / "checkpoint")
    model.save_pretrained(checkpoint)
    paths = []
    for seed, seconds in enumerate([3.0, 0.6, 3.0, 0.6]):  # in source order each batch of 2 would pair long and short
        paths.append(str(tmp_path / f"{seed}.wav"))
        soundfile.write(paths[-1], make_audio(seconds, seed=seed), 16000)
    cached = fill_feature_cache(paths, checkpoint, model.config, processor, str(tmp_path / "cache"), batch_size=2)
    encoder = load_encoder(checkpoint, model.config)
    for path, cached_path in zip(paths, cached):
        features = processor.extract_features([load_audio(path, None, processor.sampling_rate)])
        with torch.no_grad():
            frames, lengths = encoder(features["input_features"], features["input_features_mask"])
        np.testing.assert_allclose(np.load(cached_path), frames[0, : int(lengths[0])].float().numpy(), atol=1e-5)


def test_stage_mapper_reads_only_the_embedding_table_of_the_llm(seamless_checkpoint, manifest, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    import modeling_speechllm

    read = []
    real_safe_open = modeling_speechllm.safe_open

    class RecordingHandle:
        def __init__(self, *args, **kwargs):
            self.handle = real_safe_open(*args, **kwargs)

        def __enter__(self):
            self.inner = self.handle.__enter__()
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def keys(self):
            return self.inner.keys()

        def get_tensor(self, key):
            read.append(key)
            return self.inner.get_tensor(key)

    def refuse(*args, **kwargs):
        raise AssertionError("stage A loaded the LLM")

    monkeypatch.setattr(modeling_speechllm, "safe_open", RecordingHandle)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    trainer = run_stage("mapper", seamless_checkpoint, manifest, tmp_path / "a", "--feature_cache_dir", str(tmp_path / "c"), steps=1)
    llm_keys = [key for key in read if key.startswith("language_model.")]
    assert llm_keys == ["language_model.model.embed_tokens.weight"]
    assert not any(name.startswith("language_model") for name, _ in trainer.model.named_parameters())


def test_spec_augment_flags_reach_the_trained_model_and_its_saved_config(seamless_checkpoint, manifest, tmp_path):
    extra = ["--feature_cache_dir", str(tmp_path / "c"), "--mask_time_prob", "0.3"]
    trainer = run_stage("mapper", seamless_checkpoint, manifest, tmp_path / "a", *extra, steps=2)
    assert (trainer.model.config.mask_time_prob, trainer.model.config.mask_feature_prob) == (0.3, 0.0)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["mask_time_prob"] == 0.3
    with pytest.raises(ValueError, match="mask_feature_length=64 must be smaller than the encoder width 32"):
        run_stage("mapper", seamless_checkpoint, manifest, tmp_path / "b", *extra, "--mask_feature_prob", "0.1", steps=1)


def test_stage_text_trains_only_lora_and_its_loss_falls(seamless_checkpoint, manifest, tmp_path):
    trainer = run_stage("text", seamless_checkpoint, manifest, tmp_path / "b", "--learning_rate", "3e-2", steps=30)
    curve = losses(trainer)
    assert np.mean(curve[-3:]) < 0.7 * curve[0], curve
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_stage_joint_loss_falls_and_greedy_survives_reload(seamless_checkpoint, manifest, tmp_path):
    trainer = run_stage(
        "joint", seamless_checkpoint, manifest, tmp_path / "c", "--mapper_learning_rate", "3e-3",
        "--lora_learning_rate", "2e-3", "--loss_sigma", "0.5", steps=20,
    )
    curve = losses(trainer)
    assert np.mean(curve[-3:]) < 0.7 * curve[0], curve
    rates = sorted(group["lr"] for group in trainer.optimizer.param_groups)
    assert rates == pytest.approx([2e-3, 3e-3])  # LoRA and mapper at their own rates (constant schedule)
    model = trainer.model.eval()
    reloaded = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "c").eval()
    from processing_speechllm import SpeechLLMProcessor

    processor = SpeechLLMProcessor.from_pretrained(tmp_path / "c")
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": make_audio(2.5, seed=1)}, {"type": "text", "text": "what?"}]}]
    inputs = processor.apply_chat_template(conversation, sampling_rate=16000)
    with torch.no_grad():
        before = model.generate(**inputs, do_sample=False, max_new_tokens=8)
        after = reloaded.generate(**inputs, do_sample=False, max_new_tokens=8)
    assert before.tolist() == after.tolist()


def test_stage_joint_under_bf16_autocast_learns_and_saves_fp32_weights(seamless_checkpoint, manifest, tmp_path, monkeypatch):
    """`bf16: true` on a CPU (AMX machines run bf16 matmuls several times faster, bench/llm_training_step.py):
    autocast in the steps, the weights themselves stay fp32. (Forced on CPUs without AVX-512 too, where the run
    itself would fall back to fp32: this tests the bf16 path, not the machine.)"""
    monkeypatch.setattr(train, "cpu_has_fast_bf16", lambda: True)
    trainer = run_stage(
        "joint", seamless_checkpoint, manifest, tmp_path / "c", "--mapper_learning_rate", "3e-3",
        "--lora_learning_rate", "2e-3", "--loss_sigma", "0.5", "--bf16", "true", "--use_cpu", "true", steps=20,
    )
    curve = losses(trainer)
    assert np.mean(curve[-3:]) < 0.7 * curve[0], curve
    assert trainer.accelerator.mixed_precision == "bf16"
    saved = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path / "c")
    assert {p.dtype for p in saved.multi_modal_projector.parameters()} == {torch.float32}


@pytest.mark.parametrize("fast", [True, False])
def test_bf16_falls_back_to_fp32_only_where_the_cpu_would_emulate_it(fast, monkeypatch, caplog):
    monkeypatch.setattr(train, "cpu_has_fast_bf16", lambda: fast)
    _, args = train.parse_arguments(["--stage", "text", "--model_name_or_path", "m", "--train_file", "t.jsonl",
                                     "--output_dir", "o", "--bf16", "true", "--use_cpu", "true"])
    with caplog.at_level(logging.WARNING, logger="speechllm.train"):
        train.fall_back_from_emulated_bf16(args)
    assert args.bf16 is fast
    assert ("training in fp32" in caplog.text) is not fast
    trainer = transformers.Trainer(model=torch.nn.Linear(2, 2), args=args)  # what actually autocasts, or not
    assert trainer.accelerator.mixed_precision == ("bf16" if fast else "no")


def test_task_sampler_pairs_each_st_batch_with_its_mt_twin_on_the_same_process(seamless_checkpoint, manifest):
    rows = read_rows(manifest).filter(lambda row: row["id"].startswith("good"))
    examples = build_examples(rows, "joint", add_asr=True, pair_text_twins=True)
    sampler = TaskBatchSampler(examples, 1, {"asr": 0.3, "st": 0.4, "sqa": 0.3}, {"de": 0.5, "it": 0.5}, num_processes=2, seed=3)
    batches = list(sampler)
    assert batches == list(sampler) and len(batches) == len(sampler)  # deterministic for a seed and epoch
    sampler.set_epoch(1)
    assert list(sampler) != batches
    tasks = examples["as_task"]
    per_process = [batches[rank::2] for rank in range(2)]
    for own in per_process:
        for current, following in zip(own, own[1:]):
            if tasks[current[0]] == "st":
                assert tasks[following[0]] == "mt" and examples["row"][following[0]] == examples["row"][current[0]]
    # both processes run the same task at each step
    assert all(tasks[a[0]] == tasks[b[0]] for a, b in zip(*per_process))
    assert {tasks[b[0]] for b in batches} == {"asr", "st", "mt", "sqa"}


def test_task_batches_are_full_so_accelerate_deals_every_process_the_same_number(manifest):
    """A pool smaller than a batch (one ST-de row) must not give a short batch: accelerate's BatchSamplerShard would
    then deal one process more batches than the other, and it would wait for their gradients forever."""
    from accelerate.data_loader import BatchSamplerShard

    rows = read_rows(manifest).filter(lambda row: row["id"].startswith("good"))
    examples = build_examples(rows, "joint", add_asr=True, pair_text_twins=True)
    assert examples["tgt_lang"].count("de") < 4  # the ST-de pool is smaller than the batch
    for epoch in range(4):
        sampler = TaskBatchSampler(examples, 4, {"asr": 0.3, "st": 0.4, "sqa": 0.3}, {"de": 0.5, "it": 0.5}, num_processes=2, seed=epoch)
        assert all(len(batch) == 4 for batch in sampler)
        dealt = [list(BatchSamplerShard(sampler, num_processes=2, process_index=rank)) for rank in range(2)]
        assert len(dealt[0]) == len(dealt[1]) == len(sampler) // 2


def run_probed(argv, env_extra, timeout=900, processes=1, ds_config=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", **env_extra)
    if processes == 1:
        command = [sys.executable, PROBES, *argv]
    else:
        command = [
            sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", "--deepspeed_config_file", ds_config,
            "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            PROBES, *argv, "--ddp_backend", "gloo",
        ]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def stage_argv(stage, checkpoint, manifest, output_dir, steps, *extra):
    return [
        "--stage", stage, "--model_name_or_path", checkpoint, "--train_file", manifest, "--output_dir", str(output_dir),
        "--max_steps", str(steps), "--per_device_train_batch_size", "2", "--logging_steps", "1", "--report_to", "none",
        "--seed", "0", *extra,
    ]


def logged_losses(output_dir) -> dict[int, float]:
    with open(os.path.join(output_dir, "loss_curves.json")) as handle:
        return {int(step): value for step, value in json.load(handle)["loss"]}


# One schedule for the straight run that both resume tests compare with (one run, ~30 s, shared by them).
RESUME_SCHEDULE = ["--save_steps", "3", "--learning_rate", "1e-3", "--lr_scheduler_type", "linear", "--warmup_steps", "2",
                   "--mapper_learning_rate", "2e-3"]


@pytest.fixture(scope="module")
def straight_run(seamless_checkpoint, manifest, tmp_path_factory):
    """8 joint steps never interrupted, a checkpoint every 3: the curve a resumed run must follow."""
    output_dir = tmp_path_factory.mktemp("straight")
    straight = run_probed(stage_argv("joint", seamless_checkpoint, manifest, output_dir, 8, *RESUME_SCHEDULE), {})
    assert straight.returncode == 0, straight.stderr[-3000:]
    return output_dir


def test_a_killed_run_resumes_on_the_same_loss_curve(seamless_checkpoint, manifest, straight_run, tmp_path):
    killed_dir = tmp_path / "killed"
    argv = stage_argv("joint", seamless_checkpoint, manifest, killed_dir, 8, *RESUME_SCHEDULE)
    killed = run_probed(argv, {"PROBE_KILL_AT_STEP": "5"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(os.listdir(killed_dir)) == ["checkpoint-3"]
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401

    survivor = pipeline("speech-instruct", model=str(killed_dir / "checkpoint-3"))  # a checkpoint is a usable model
    assert survivor(make_audio(2.0), sampling_rate=16000, task="transcribe", max_new_tokens=3)
    resumed = run_probed(argv + ["--resume_from_checkpoint", "latest"], {})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = logged_losses(straight_run), logged_losses(killed_dir)
    assert sorted(got) == list(range(1, 9))  # steps 1-3 from the checkpoint's history, 4-8 logged after resuming
    for step, value in got.items():
        assert value == pytest.approx(expected[step], rel=1e-6, abs=1e-6), (step, value, expected[step])


def test_a_run_continues_on_another_machine_from_its_committed_snapshot(seamless_checkpoint, manifest, straight_run, tmp_path):
    from training.snapshots import restore_checkpoint

    snapshot = str(tmp_path / "run.partial.safetensors")  # what is committed: fp16 mapper + LoRA, and the run's position
    export_weights(straight_run / "checkpoint-3", snapshot)
    assert os.path.getsize(snapshot) < os.path.getsize(straight_run / "checkpoint-3" / "model.safetensors")
    moved = tmp_path / "elsewhere"  # a machine with none of the straight run's files
    assert restore_checkpoint(snapshot, seamless_checkpoint, str(moved)) == str(moved / "checkpoint-3")
    resumed = run_probed(stage_argv("joint", seamless_checkpoint, manifest, moved, 8, *RESUME_SCHEDULE, "--resume_from_checkpoint", "latest"), {})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = logged_losses(straight_run), logged_losses(moved)
    assert sorted(got) == list(range(1, 9))
    assert got[4] == pytest.approx(expected[4], rel=1e-3)  # the same weights (to fp16) on the same next batch
    assert got[4] != pytest.approx(expected[1], rel=1e-3)

    def rates(run_dir):
        with open(run_dir / "checkpoint-6" / "trainer_state.json") as handle:
            return [(entry["step"], entry["learning_rate"]) for entry in json.load(handle)["log_history"] if "learning_rate" in entry]

    assert rates(moved) == rates(straight_run)  # the schedule goes on where it was, not from its warm-up
    finished = str(tmp_path / "finished.safetensors")  # a finished run's export holds its weights only
    export_weights(straight_run, finished)
    with pytest.raises(ValueError, match="no run state"):
        restore_checkpoint(finished, seamless_checkpoint, str(tmp_path / "nowhere"))


def export_weights(run_dir, output):
    export = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "export_default_weights.py"), str(run_dir),
                             "--output", str(output)], capture_output=True, text=True)
    assert export.returncode == 0, export.stderr[-3000:]


def test_stage_defaults_fill_only_the_flags_not_given(tmp_path):
    base = ["--model_name_or_path", "m", "--train_file", "t.jsonl", "--output_dir", str(tmp_path)]
    recipe, args = train.parse_arguments(["--stage", "mapper", *base])
    assert (args.learning_rate, args.lr_scheduler_type.value, args.train_sampling_strategy) == (1e-4, "cosine", "group_by_length")
    recipe, args = train.parse_arguments(["--stage", "text", "--learning_rate", "0.002", *base])
    assert args.learning_rate == 0.002 and args.weight_decay == 0.1
    config = tmp_path / "run.yaml"
    config.write_text(f"stage: joint\nmodel_name_or_path: m\ntrain_file: t.jsonl\noutput_dir: {tmp_path}\nlora_learning_rate: 0.0003\n")
    recipe, args = train.parse_arguments([str(config)])
    assert recipe.stage == "joint" and recipe.lora_learning_rate == 0.0003 and args.max_steps == 1000
    recipe, args = train.parse_arguments([str(config), "--max_steps", "40", "--lora_learning_rate", "0.001", "--bf16", "true", "--use_cpu", "true"])
    assert (args.max_steps, recipe.lora_learning_rate, args.bf16, recipe.train_file) == (40, 0.001, True, ["t.jsonl"])
    with pytest.raises(SystemExit, match="--stage must be one of mapper, text, joint"):
        train.parse_arguments(["--stage", "pretrain", *base])


SHIPPED_CONFIGS = sorted(name for name in os.listdir(os.path.join(ROOT, "configs")) if name.endswith((".yaml", ".yml")))


@pytest.mark.parametrize("name", SHIPPED_CONFIGS)
def test_every_shipped_config_parses_with_its_data_sources(name, tmp_path):
    """A misspelt flag or source option in configs/ fails here, not an hour into a CPU run: the file's flags parse
    into the recipe and TrainingArguments, and each of its data sources into a DataSource."""
    from training.sources import parse_source

    recipe, args = train.parse_arguments([os.path.join(ROOT, "configs", name), "--output_dir", str(tmp_path)])
    assert recipe.stage in train.STAGES and recipe.model_name_or_path and args.max_steps > 0
    sources = [parse_source(spec, **train.source_defaults(recipe, split)) for specs, split in
               ((recipe.train_file, recipe.train_split), (recipe.eval_file or [], recipe.eval_split)) for spec in specs]
    assert sources and all(source.path and source.weight > 0 for source in sources)


def test_stage_text_in_the_speech_slot_reads_transcripts_like_a_perfect_mapper(seamless_checkpoint, manifest, tmp_path):
    """--text_in_speech_slot: every text task puts its transcript in the speech slot (its tokens, then mapper pads);
    ASR rows become `read` examples (transcribe the slot); the loss falls; only LoRA trains."""
    from processing_speechllm import SpeechLLMProcessor
    from training.data import InstructionCollator

    trainer = run_stage("text", seamless_checkpoint, manifest, tmp_path / "b", "--learning_rate", "3e-2",
                        "--text_in_speech_slot", "true", steps=30)
    curve = losses(trainer)
    assert np.mean(curve[-3:]) < 0.7 * curve[0], curve
    assert all("lora_" in n for n, p in trainer.model.named_parameters() if p.requires_grad)
    examples = trainer.train_dataset
    assert set(examples["as_task"]) == {"read", "mt", "qa"}
    processor = SpeechLLMProcessor.from_pretrained(seamless_checkpoint)
    pad_id = trainer.model.config.mapper_pad_token_id
    collator = trainer.data_collator
    assert isinstance(collator, InstructionCollator)
    read = [e for e in examples if e["as_task"] == "read"][0]
    batch = collator([read])
    ids = batch["input_ids"][0].tolist()
    transcript = processor.tokenizer(read["transcript"], add_special_tokens=False)["input_ids"]
    pads = [i for i, token in enumerate(ids) if token == pad_id]
    assert pads and pads == list(range(pads[0], pads[-1] + 1))  # one run of pads ...
    assert ids[pads[0] - len(transcript) : pads[0]] == transcript  # ... right after the transcript's tokens
    assert 0.5 * len(transcript) - 1 <= len(pads) <= 1.5 * len(transcript) + 1
    answer = [token for token, label in zip(ids, batch["labels"][0].tolist()) if label != -100]
    assert answer[: len(transcript)] == transcript  # the target is the transcript itself
    assert batch["input_ids"].shape == collator([read])["input_ids"].shape  # the pad count is fixed per example
    with pytest.raises(SystemExit, match="stage-B"):
        run_stage("joint", seamless_checkpoint, manifest, tmp_path / "c", "--text_in_speech_slot", "true", steps=1)


def test_early_stopping_ends_a_run_whose_eval_loss_stops_improving(seamless_checkpoint, manifest, tmp_path):
    """Stage A "as long as it keeps improving": at learning rate 0 the eval loss never improves on the first
    evaluation, so patience 1 stops the 20-step run at its second evaluation (step 4)."""
    every_2 = ["--eval_file", manifest, "--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "2",
               "--load_best_model_at_end", "true", "--feature_cache_dir", str(tmp_path / "cache")]
    trainer = run_stage("mapper", seamless_checkpoint, manifest, tmp_path / "a", "--learning_rate", "0",
                        "--early_stopping_patience", "1", "--save_strategy", "steps", *every_2, steps=20)
    assert trainer.state.global_step == 4
    evaluations = [entry["eval_loss"] for entry in trainer.state.log_history if "eval_loss" in entry]
    assert len(evaluations) == 2 and evaluations[0] == evaluations[1]
    with pytest.raises(SystemExit, match="--early_stopping_patience needs --eval_file"):
        run_stage("mapper", seamless_checkpoint, manifest, tmp_path / "b", "--early_stopping_patience", "1", steps=2)


def test_resume_latest_without_any_checkpoint_starts_fresh(seamless_checkpoint, manifest, tmp_path, caplog):
    """`--resume_from_checkpoint latest` is safe on a first run (a driver can always pass it)."""
    trainer = run_stage("text", seamless_checkpoint, manifest, tmp_path / "new", "--resume_from_checkpoint", "latest", steps=2)
    assert trainer.state.global_step == 2
    assert "starting fresh" in caplog.text

