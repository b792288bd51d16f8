"""Serve a speechllm checkpoint (default: the embedded default) with vLLM's OpenAI-compatible server.

    ./run serve [--checkpoint DIR] [--port 8000] [--host 127.0.0.1] [--dtype float32] [-- VLLM ARGS ...]

The checkpoint is exported once (LoRA merged, the chat template; serving/export.py) into outputs/serve/, keyed by a
digest of its weights and of the code an export carries, then vLLM's server starts on it from the serving venv
(.venv-serve, requirements-serve-*.txt).
Anything after `--` goes to vLLM as it is (e.g. `-- --tensor-parallel-size 2` on a machine with two GPUs).
Requests: `chat/completions` with an `input_audio` part (base64 WAV/FLAC/Opus) and a text part (README: Serving).
"""

import argparse
import hashlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVE_VENV = os.environ.get("SPEECHLLM_SERVE_VENV", os.path.join(ROOT, ".venv-serve"))
# A context that holds a 30 s clip (187 speech tokens for Whisper), the prompt and 150 new tokens, with room to spare;
# a smaller window than the LLM's 32k leaves the KV cache room for more concurrent requests.
MAX_MODEL_LEN = 2048


def serving_python() -> str:
    python = os.path.join(SERVE_VENV, "bin", "python")
    if not os.path.exists(python):
        raise SystemExit(f"no serving venv at {SERVE_VENV}: `./run serve` makes it (vLLM lives apart from the project's venv)")
    return python


def export_digest(checkpoint: str) -> str:
    """The export's key: the checkpoint's weights and the code an export carries (the model's remote code, which the
    exporter copies from this project, and the exporter itself), so that an upgraded project never serves an export
    made by older code."""
    import modeling_speechllm
    from serving import export
    from training.checkpoints import model_fingerprint

    digest = hashlib.sha1(model_fingerprint(checkpoint).encode())
    root = os.path.dirname(os.path.abspath(modeling_speechllm.__file__))
    for path in [os.path.join(root, name) for name in modeling_speechllm.REMOTE_CODE_FILES] + [export.__file__]:
        with open(path, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha1").digest())
    return digest.hexdigest()[:16]


def exported_checkpoint(checkpoint: str, exports_dir: str) -> str:
    """The checkpoint's vLLM export in `exports_dir`, made once per distinct weights and exporting code."""
    from serving.export import export_for_vllm

    name = os.path.basename(os.path.normpath(checkpoint))
    target = os.path.join(exports_dir, f"{name}-{export_digest(checkpoint)}")
    if not os.path.exists(os.path.join(target, "chat_template.jinja")):
        print(f"exporting {checkpoint} for vLLM into {target} (once) ...", flush=True)
        export_for_vllm(checkpoint, target + ".partial")
        os.replace(target + ".partial", target)  # a killed export never passes for a finished one
    return target


def server_environment() -> dict:
    """vLLM's CPU backend reserves a core for its own threads by default, which leaves a 2-core machine one."""
    env = dict(os.environ)
    if (os.cpu_count() or 1) <= 4:
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB of KV cache on CPU
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def server_command(model_dir: str, host: str, port: int, dtype: str, served_name: str, extra: list[str],
                   speech: bool = True) -> list[str]:
    """vLLM's OpenAI server on a speechllm export (its chat template, audio parts), or with speech=False on a plain
    text LLM (the tokenizer's own chat template): e.g. the LLM that writes fakACL (synthesis/endpoint.py)."""
    # `python -m vllm.entrypoints.openai.api_server`: vllm-cpu's `vllm` console script fails on its own version lookup.
    speech_flags = [
        "--chat-template", os.path.join(model_dir, "chat_template.jinja"),
        "--chat-template-content-format", "openai",
        "--limit-mm-per-prompt", '{"audio": 4}',
    ] if speech else []  # fmt: skip
    return [
        serving_python(), "-m", "vllm.entrypoints.openai.api_server",
        "--model", model_dir,
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
        "--dtype", dtype,
        "--max-model-len", str(MAX_MODEL_LEN),
        *speech_flags,
        *extra,
    ]  # fmt: skip


def main(argv: list[str] | None = None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a speechllm checkpoint directory (default: the embedded default)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dtype", default="float32", help="float32 (the pipeline's numbers) or bfloat16 (faster on CPUs with bf16)")
    parser.add_argument("--served-model-name", default="speechllm", help="the `model` field requests name")
    parser.add_argument("--exports-dir", default=os.path.join(ROOT, "outputs", "serve"))
    args = parser.parse_args(own)
    checkpoint = args.checkpoint
    if checkpoint is None:
        from scripts.build_default_model import built_default

        checkpoint = built_default(os.path.join(ROOT, "outputs", "default"))
    if not os.path.exists(os.path.join(checkpoint, "config.json")):
        raise SystemExit(f"{checkpoint} is not a speechllm checkpoint (no config.json)")
    model_dir = exported_checkpoint(checkpoint, args.exports_dir)
    command = server_command(model_dir, args.host, args.port, args.dtype, args.served_model_name, extra)
    print(f"serving {checkpoint} at http://{args.host}:{args.port}/v1 as {args.served_model_name!r}", flush=True)
    os.execve(command[0], command, server_environment())


if __name__ == "__main__":
    main()
