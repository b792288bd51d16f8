"""A saved checkpoint loads in a NEW process that never imported this repo: other cwd, offline, remote code."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
from conftest import make_audio

FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor, pipeline

    checkpoint, audio_path = sys.argv[1], sys.argv[2]
    audio = np.load(audio_path)
    config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=True)
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True)
    causal = AutoModelForCausalLM.from_pretrained(checkpoint, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(checkpoint, trust_remote_code=True)
    kwargs = dict(sampling_rate=16000, max_new_tokens=6, generate_kwargs={"min_new_tokens": 6})
    by_task = pipeline("speech-instruct", model=checkpoint, trust_remote_code=True)
    inferred = pipeline(model=checkpoint, trust_remote_code=True)
    print(json.dumps({
        "classes": [type(o).__name__ for o in (config, model, causal, processor, by_task, inferred)],
        "modules": sorted({type(o).__module__.split(".")[0] for o in (config, model, processor, by_task)}),
        "repo_imported": any(name in sys.modules for name in ("configuration_speechllm", "modeling_speechllm")),
        "task": by_task(audio, task="transcribe", **kwargs),
        "inferred": inferred(audio, task="translate", target_language="de", **kwargs),
    }))
    """
)


def run_fresh(checkpoint, tmp_path):
    audio_path = tmp_path / "audio.npy"
    np.save(audio_path, make_audio(1.5, seed=7))
    script = tmp_path / "load_checkpoint.py"
    script.write_text(FRESH_PROCESS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"), TRANSFORMERS_VERBOSITY="error")
    result = subprocess.run(
        [sys.executable, str(script), checkpoint, str(audio_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_checkpoint_loads_with_remote_code_in_a_fresh_process(tiny_checkpoint, tmp_path):
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401  (registers speech-instruct in this process)

    loaded = run_fresh(tiny_checkpoint, tmp_path)
    assert loaded["classes"] == [
        "SpeechLLMConfig",
        "SpeechLLMForConditionalGeneration",
        "SpeechLLMForConditionalGeneration",
        "SpeechLLMProcessor",
        "SpeechInstructPipeline",
        "SpeechInstructPipeline",
    ]
    assert loaded["modules"] == ["transformers_modules"] and not loaded["repo_imported"]
    # the fresh process decodes exactly what the in-repo pipeline decodes
    local = pipeline("speech-instruct", model=tiny_checkpoint)
    kwargs = dict(sampling_rate=16000, max_new_tokens=6, generate_kwargs={"min_new_tokens": 6})
    audio = make_audio(1.5, seed=7)
    assert loaded["task"] == local(audio, task="transcribe", **kwargs) and loaded["task"]
    assert loaded["inferred"] == local(audio, task="translate", target_language="de", **kwargs)


def test_a_saved_pipeline_keeps_its_processor_settings(tiny_whisper, tmp_path):
    from transformers import pipeline

    import pipeline_speechllm  # noqa: F401

    model, processor = tiny_whisper
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    pipe = pipeline("speech-instruct", model=str(tmp_path / "model"))
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = run_fresh(str(tmp_path / "pipe"), tmp_path)
    assert loaded["classes"][3] == "SpeechLLMProcessor"
    reloaded = pipeline("speech-instruct", model=str(tmp_path / "pipe"))
    assert reloaded.processor.feature_stride == 2  # Whisper's conv stride survived the save
    kwargs = dict(sampling_rate=16000, max_new_tokens=6, generate_kwargs={"min_new_tokens": 6})
    assert loaded["task"] == pipe(make_audio(1.5, seed=7), task="transcribe", **kwargs)


def test_the_project_classes_load_a_checkpoint_without_asking_about_remote_code(tiny_checkpoint, tmp_path):
    """A script of the project that uses the classes directly (as train.py does) must never stop on the
    "Do you wish to run the custom code?" question for the checkpoint's own copy of the code."""
    script = "from processing_speechllm import SpeechLLMProcessor as P; print(type(P.from_pretrained(__import__('sys').argv[1]).tokenizer).__name__)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    result = subprocess.run(
        [sys.executable, "-c", script, tiny_checkpoint], cwd=tmp_path, env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "custom code" not in result.stdout + result.stderr and result.stdout.strip()


LOAD_SAVE_RELOAD = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from transformers import AutoModel, pipeline

    checkpoint, saved, audio_path = sys.argv[1], sys.argv[2], sys.argv[3]
    model = AutoModel.from_pretrained(checkpoint, trust_remote_code=True)
    model.save_pretrained(saved)  # a model loaded through remote code, saved (as after fine-tuning it)
    import shutil
    for name in ("tokenizer.json", "tokenizer_config.json", "processor_config.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(checkpoint, name)):
            shutil.copy(os.path.join(checkpoint, name), saved)
    audio = np.load(audio_path)
    kwargs = dict(sampling_rate=16000, max_new_tokens=6, generate_kwargs={"min_new_tokens": 6})
    print(json.dumps({"files": sorted(n for n in os.listdir(saved) if n.endswith(".py")),
                      "text": pipeline("speech-instruct", model=checkpoint, trust_remote_code=True)(audio, task="transcribe", **kwargs)}))
    """
)


def test_a_model_loaded_through_remote_code_saves_a_copy_that_loads_the_same_way(tiny, tmp_path):
    """Issue 42: save_pretrained of a remote-code model looked for processing_speechllm.py in transformers' module
    cache, which holds only what the model class imports, and stopped with FileNotFoundError (any encoder: one here)."""
    from modeling_speechllm import REMOTE_CODE_FILES

    model, processor = tiny
    tiny_checkpoint = str(tmp_path / "tiny")
    model.save_pretrained(tiny_checkpoint)
    processor.save_pretrained(tiny_checkpoint)

    audio_path = tmp_path / "audio.npy"
    np.save(audio_path, make_audio(1.5, seed=7))
    script = tmp_path / "load_save.py"
    script.write_text(LOAD_SAVE_RELOAD)
    saved = tmp_path / "saved"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"), TRANSFORMERS_VERBOSITY="error")
    result = subprocess.run([sys.executable, str(script), tiny_checkpoint, str(saved), str(audio_path)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    first = json.loads(result.stdout.strip().splitlines()[-1])
    assert first["files"] == sorted(REMOTE_CODE_FILES)
    reloaded = run_fresh(str(saved), tmp_path)  # the saved copy, in another fresh process, through remote code
    assert reloaded["modules"] == ["transformers_modules"]
    assert reloaded["task"] == first["text"] and first["text"]
