"""Checkpoint files without loading them: streaming safetensors copies, and the stage-A export.

Stage A trains only the SpeechMapper; its output must still be a complete speechllm checkpoint. The LLM and encoder
tensors are streamed byte for byte from the base checkpoint (constant memory, whatever the LLM's size) and the
trained mapper is written beside them, with an index that transformers reads like any sharded checkpoint.
"""

import hashlib
import json
import os
import shutil
import struct

from safetensors import safe_open
from safetensors.torch import save_file

from modeling_speechllm import copy_remote_code, safetensors_files

COPY_CHUNK = 64 << 20
INDEX_NAME = "model.safetensors.index.json"


def read_header(path: str) -> tuple[dict, int]:
    """The safetensors JSON header and the offset where the tensor bytes start."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return header, 8 + length


def tensor_chunks(handle, data_start: int, entry: dict):
    """The raw bytes of one tensor of an open safetensors file, in chunks of at most COPY_CHUNK."""
    begin, end = entry["data_offsets"]
    handle.seek(data_start + begin)
    remaining = end - begin
    while remaining:
        chunk = handle.read(min(COPY_CHUNK, remaining))
        remaining -= len(chunk)
        yield chunk


def tensor_bytes_digest(locations: dict[str, tuple[str, str]]) -> str:
    """SHA-1 over the names, shapes, dtypes and raw bytes of the given tensors, streamed from their files."""
    digest = hashlib.sha1()
    headers = {}
    for key, (path, stored_key) in sorted(locations.items()):
        if path not in headers:
            headers[path] = read_header(path)
        header, data_start = headers[path]
        entry = header[stored_key]
        digest.update(json.dumps([key, entry["dtype"], entry["shape"]]).encode())
        with open(path, "rb") as handle:
            for chunk in tensor_chunks(handle, data_start, entry):
                digest.update(chunk)
    return digest.hexdigest()


def copy_tensors(source: str, keys: list[str], destination: str):
    """Write the tensors `keys` of safetensors file `source` into a new file, streaming their bytes."""
    header, data_start = read_header(source)
    new_header, offset = {"__metadata__": {"format": "pt"}}, 0
    for key in keys:
        begin, end = header[key]["data_offsets"]
        new_header[key] = {"dtype": header[key]["dtype"], "shape": header[key]["shape"], "data_offsets": [offset, offset + end - begin]}
        offset += end - begin
    encoded = json.dumps(new_header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # keep the tensor data 8-byte aligned
    with open(source, "rb") as src, open(destination, "wb") as dst:
        dst.write(struct.pack("<Q", len(encoded)) + encoded)
        for key in keys:
            for chunk in tensor_chunks(src, data_start, header[key]):
                dst.write(chunk)


def export_mapper_checkpoint(base_checkpoint: str, trained_dir: str, processor=None):
    """Turn a stage-A output (mapper weights only) into a full checkpoint: base tensors + trained mapper."""
    trained_file = os.path.join(trained_dir, "model.safetensors")
    with safe_open(trained_file, framework="pt") as handle:
        trained = {key: handle.get_tensor(key) for key in handle.keys()}
    weight_map = {}
    for number, source in enumerate(safetensors_files(base_checkpoint)):
        with safe_open(source, framework="pt") as handle:
            keys = [key for key in handle.keys() if key not in trained]
        name = f"model-base-{number:05d}.safetensors"
        copy_tensors(source, keys, os.path.join(trained_dir, name))
        weight_map.update(dict.fromkeys(keys, name))
    save_file(trained, os.path.join(trained_dir, "model-mapper.safetensors"), metadata={"format": "pt"})
    weight_map.update(dict.fromkeys(trained, "model-mapper.safetensors"))
    os.remove(trained_file)
    with open(os.path.join(trained_dir, INDEX_NAME), "w") as handle:
        json.dump({"metadata": {}, "weight_map": dict(sorted(weight_map.items()))}, handle, indent=2)
    generation_config = os.path.join(base_checkpoint, "generation_config.json")
    if os.path.exists(generation_config):
        shutil.copy(generation_config, trained_dir)
    copy_remote_code(trained_dir)
    if processor is not None:
        processor.save_pretrained(trained_dir)


def model_fingerprint(model_dir: str) -> str:
    """A digest of the checkpoint's weight files (a few seconds for a 2 GB model): predictions kept for one model are
    never scored as another's (a directory trained again), and the same model rebuilt on another machine
    (default_model/RECIPE.md) resumes its evaluation there."""
    digest = hashlib.sha1()
    files = sorted(name for name in os.listdir(model_dir) if name.endswith(".safetensors")) if os.path.isdir(model_dir) else []
    for name in files:
        with open(os.path.join(model_dir, name), "rb") as handle:
            digest.update(name.encode() + hashlib.file_digest(handle, "sha1").digest())
    return digest.hexdigest()[:16] if files else model_dir  # a Hub id: its name is all there is here
