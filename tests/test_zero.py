"""The recipe under DeepSpeed ZeRO-2 and ZeRO-3 on 2 processes (gloo), launched as a user launches it.

Per ZeRO stage, the three stages run as the recipe chains them: A (mapper) and B (text LoRA) from the base
checkpoint, C (joint) from their outputs. Every run saves an intermediate checkpoint; every final checkpoint loads in
a fresh process through AutoModel and pipeline("speech-instruct") with remote code. ZeRO-3 stage-A and stage-C runs
killed with SIGKILL after a save resume on the uninterrupted runs' loss curves.
"""

import os

import pytest
import torch
from conftest import ROOT
from safetensors.torch import load_file
from test_remote_code import run_fresh
from test_train import logged_losses, run_probed, stage_argv

from modeling_speechllm import safetensors_files

ZERO_CONFIGS = {"zero2": "ds_config.json", "zero3": "ds_config_zero3.json"}
STAGES = ("mapper", "text", "joint")
STEPS, SAVE_EVERY, KILL_AT = 6, 3, 5


def recipe_argv(stage, base, manifest, root):
    """Stage arguments; C takes A's mapper and B's adapters. Every run saves a checkpoint at step 3 of 6."""
    extra = {
        "mapper": ["--feature_cache_dir", str(root / "features"), "--learning_rate", "1e-3"],
        "text": ["--learning_rate", "1e-2"],
        "joint": ["--mapper_checkpoint", str(root / "mapper"), "--lora_checkpoint", str(root / "text"),
                  "--mapper_learning_rate", "1e-3", "--lora_learning_rate", "1e-2"],
    }[stage]
    return stage_argv(stage, base, manifest, root / stage, STEPS, "--save_steps", str(SAVE_EVERY), *extra)


@pytest.fixture(scope="module")
def recipe_runs(seamless_checkpoint, manifest, tmp_path_factory):
    """{zero: (folder, {stage: finished process})}: the three stages in order under each ZeRO config."""
    runs = {}
    for zero, ds_config in ZERO_CONFIGS.items():
        root = tmp_path_factory.mktemp(zero)
        results = {}
        for stage in STAGES:
            ids = root / f"ids-{stage}"
            ids.mkdir()
            argv = recipe_argv(stage, seamless_checkpoint, manifest, root)
            results[stage] = run_probed(argv, {"PROBE_IDS_DIR": str(ids)}, processes=2, ds_config=os.path.join(ROOT, ds_config))
        runs[zero] = (root, results)
    return runs


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("zero", list(ZERO_CONFIGS))
def test_each_stage_trains_saves_and_loads_under_zero(recipe_runs, zero, stage, seamless_checkpoint, tmp_path):
    root, results = recipe_runs[zero]
    result = results[stage]
    assert result.returncode == 0, result.stderr[-4000:]
    output = root / stage
    assert sorted(name for name in os.listdir(output) if name.startswith("checkpoint-")) == ["checkpoint-3", "checkpoint-6"]
    assert sorted(logged_losses(output)) == list(range(1, STEPS + 1))
    seen = [set((root / f"ids-{stage}" / f"rank-{rank}.txt").read_text().split()) for rank in range(2)]
    assert seen[0] and seen[1] and seen[0] != seen[1]  # each process trains on its own share of the rows

    # The weights saved are the trained, gathered ones (not empty ZeRO-3 partitions, not the starting values).
    trained = {"mapper": "multi_modal_projector.", "text": "lora_", "joint": "multi_modal_projector."}[stage]
    saved = tensors_named(output, trained)
    start = tensors_named(root / "mapper", trained) if stage == "joint" else tensors_named(seamless_checkpoint, trained)
    assert saved and all(value.numel() > 0 for value in saved.values())
    if stage == "text":  # new adapters start with lora_B = 0
        assert any(".lora_B." in key and value.abs().sum() > 0 for key, value in saved.items())
    else:
        assert any(not torch.equal(value, start[key]) for key, value in saved.items())
    if stage == "joint":  # C started from A's mapper and B's adapters
        assert "loaded the SpeechMapper" in result.stderr and "loaded the LoRA adapters" in result.stderr

    loaded = run_fresh(str(output), tmp_path)
    assert loaded["classes"][1] == "SpeechLLMForConditionalGeneration" and loaded["task"]


def tensors_named(checkpoint, part: str) -> dict:
    """Every tensor of a checkpoint whose name contains `part`."""
    tensors = {}
    for path in safetensors_files(str(checkpoint)):
        tensors.update({key: value for key, value in load_file(path).items() if part in key})
    return tensors


@pytest.mark.parametrize("stage", ["mapper", "joint"])
def test_a_zero3_run_killed_after_a_save_resumes_on_the_same_loss_curve(recipe_runs, stage, seamless_checkpoint, manifest, tmp_path):
    """Both samplers (stage A's length-grouped order, stage C's task batches) replay the resumed epoch's order."""
    root, results = recipe_runs["zero3"]
    assert results[stage].returncode == 0, results[stage].stderr[-4000:]
    ds_config = os.path.join(ROOT, ZERO_CONFIGS["zero3"])
    argv = recipe_argv(stage, seamless_checkpoint, manifest, root)
    killed_dir = tmp_path / "killed"
    argv[argv.index("--output_dir") + 1] = str(killed_dir)
    killed = run_probed(argv, {"PROBE_KILL_AT_STEP": str(KILL_AT)}, processes=2, ds_config=ds_config)
    assert killed.returncode != 0, "the run was to be killed at step 5"
    assert sorted(os.listdir(killed_dir)) == [f"checkpoint-{SAVE_EVERY}"]
    resumed = run_probed(argv + ["--resume_from_checkpoint", "latest"], {}, processes=2, ds_config=ds_config)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    expected, got = logged_losses(root / stage), logged_losses(killed_dir)
    assert sorted(got) == list(range(1, STEPS + 1))  # 1-3 from the checkpoint's history, 4-6 logged after resuming
    for step, value in got.items():
        assert value == pytest.approx(expected[step], rel=1e-6, abs=1e-6), (step, value, expected[step])
