"""An instruct LLM behind any OpenAI-compatible server (vLLM, SGLang, TGI, a hosted API): the data builds write talks,
questions and translations through it exactly as through the local model (synthesis.llm.InstructLLM).

    python -m vllm.entrypoints.openai.api_server --model meta-llama/Llama-3.1-70B-Instruct --tensor-parallel-size 8
    python -m synthesis.annotate --llm_endpoint http://HOST:8000/v1 --llm_model meta-llama/Llama-3.1-70B-Instruct

Requests go out `concurrency` at a time (the server batches them); the OpenAI client retries a refused connection,
a timeout, 429 and 5xx with backoff. When the server stays away the build stops with one line that says so: every
chunk already answered is in the build's cache, and the same command resumes after it.
"""

import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor

# Characters per token of English text for the byte-level BPE vocabularies of current instruct LLMs, rounded down:
# an output budget computed from it errs long (the server has no tokenizer call in the OpenAI API).
CHARACTERS_PER_TOKEN = 3.0


class EndpointError(RuntimeError):
    """The server did not answer, after the client's retries; the message says where and that the build resumes."""


class EndpointLLM:
    """Chat requests to `model` at `url` (".../v1"); greedy unless a temperature is given, then seeded per request."""

    def __init__(self, url: str, model: str, concurrency: int = 8, max_retries: int = 5, timeout: float = 600.0,
                 api_key: str | None = None):
        from openai import OpenAI

        self.url, self.model, self.concurrency = url, model, concurrency
        self.client = OpenAI(base_url=url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "unused"),
                             max_retries=max_retries, timeout=timeout)

    def count_tokens(self, text: str) -> int:
        return int(len(text) / CHARACTERS_PER_TOKEN) + 1

    def reply(self, instructions: list[str], max_new_tokens: int, batch_size: int = 16, temperature: float = 0.0,
              seed: int = 0) -> list[str]:
        """One reply per instruction, in order. `batch_size` is the local model's; here `concurrency` bounds the
        requests in flight. A sampled reply draws from seed + its index, so a rerun writes the same text."""
        ask = functools.partial(self.ask, max_new_tokens=max_new_tokens, temperature=temperature)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(ask, instructions, [seed + index for index in range(len(instructions))]))

    def ask(self, instruction: str, seed: int, max_new_tokens: int, temperature: float) -> str:
        import openai

        sampling = {"temperature": temperature, "top_p": 0.95, "seed": seed} if temperature > 0 else {"temperature": 0.0}
        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": instruction}], max_tokens=max_new_tokens, **sampling
            )
        except (openai.APIConnectionError, openai.APIStatusError) as error:
            raise EndpointError(
                f"the LLM endpoint {self.url} (model {self.model}) did not answer: {type(error).__name__}: "
                f"{str(error).splitlines()[0]}. What was written so far is in the build's cache: run the same command "
                "again when the server is back, and it resumes after it"
            ) from None
        return (response.choices[0].message.content or "").strip()


def stops_with_one_line(main):
    """A command's main that ends with the EndpointError's line, not a traceback from inside the HTTP client."""

    module = sys.modules.get(main.__module__)
    name = module.__spec__.name if getattr(module, "__spec__", None) else main.__module__  # not "__main__" under -m

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except EndpointError as error:
            raise SystemExit(f"{name}: {error}") from None

    return wrapped
