"""The client side of the speech endpoint: audio as an OpenAI `input_audio` part, and a server run for tests and
benchmarks (start, wait until healthy, stop).

    from serving.client import audio_message
    client.chat.completions.create(model="speechllm", messages=[audio_message("talk.wav", "Transcribe ...")], temperature=0)
"""

import base64
import io
import os
import signal
import socket
import subprocess
import time
import urllib.request

import numpy as np
import soundfile

# soundfile's container names for the formats the endpoint documents (the `format` field of input_audio).
FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}


def encode_audio(samples: np.ndarray, sampling_rate: int, audio_format: str = "wav") -> str:
    """Base64 of `samples` written as WAV (float), FLAC (16-bit) or Ogg Opus."""
    subtype = {"wav": "FLOAT", "flac": "PCM_16", "ogg": "OPUS"}[audio_format]
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sampling_rate, format=FORMATS[audio_format], subtype=subtype)
    return base64.b64encode(buffer.getvalue()).decode()


def audio_message(audio, instruction: str | None, audio_format: str = "wav", sampling_rate: int = 16000) -> dict:
    """A user message with one clip (a path, or samples at `sampling_rate`) and an instruction."""
    if isinstance(audio, str):
        audio_format = os.path.splitext(audio)[1].lstrip(".").lower() or audio_format
        with open(audio, "rb") as handle:
            data = base64.b64encode(handle.read()).decode()
    else:
        data = encode_audio(audio, sampling_rate, audio_format)
    content = [{"type": "input_audio", "input_audio": {"data": data, "format": audio_format}}]
    if instruction:
        content.append({"type": "text", "text": instruction})
    return {"role": "user", "content": content}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """vLLM's OpenAI server on an exported checkpoint, in its own process group (engine core and worker included)."""

    def __init__(self, model_dir: str, dtype: str = "float32", log_path: str | None = None, extra: list[str] = (),
                 served_name: str = "speechllm", speech: bool = True):
        from serving.serve import server_command, server_environment

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or os.path.join(model_dir, f"server-{self.port}.log")
        command = server_command(model_dir, "127.0.0.1", self.port, dtype, served_name, list(extra), speech)
        self.log = open(self.log_path, "w")  # noqa: SIM115 (open while the server runs; closed by stop())
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, env=server_environment(), start_new_session=True
        )

    def wait_until_healthy(self, timeout: float = 600.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with {self.process.returncode}: see {self.log_path}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(2)
        raise TimeoutError(f"the vLLM server was not healthy within {timeout:.0f} s: see {self.log_path}")

    def process_tree_rss(self) -> int:
        """Resident memory of the server and its children (API server, engine core, worker), in bytes."""
        import psutil

        root = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)] if p.is_running())

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()

    def __enter__(self):
        return self.wait_until_healthy()

    def __exit__(self, *exc):
        self.stop()
