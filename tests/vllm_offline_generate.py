"""Run by the serving venv's python (tests/test_serving.py): vLLM's offline engine (`LLM.chat`) on WAV clips.

    python tests/vllm_offline_generate.py MODEL_DIR REQUEST.json OUTPUT.json

REQUEST.json: {"clips": [paths], "instruction": str, "max_tokens": int}. All clips go in one `chat` call, so the
engine batches them (continuous batching); OUTPUT.json has each one's prompt and generated token ids.
"""

import json
import os
import sys


def main():
    model_dir, request_path, output_path = sys.argv[1:4]
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    from vllm import LLM, SamplingParams

    from serving.client import audio_message

    with open(request_path) as handle:
        request = json.load(handle)
    llm = LLM(model=model_dir, dtype="float32", max_model_len=1024, limit_mm_per_prompt={"audio": 2})
    conversations = [[audio_message(path, request["instruction"])] for path in request["clips"]]
    outputs = llm.chat(
        conversations,
        SamplingParams(temperature=0.0, max_tokens=request["max_tokens"]),
        chat_template_content_format="openai",
        use_tqdm=False,
    )
    results = [{"prompt_token_ids": list(o.prompt_token_ids), "token_ids": list(o.outputs[0].token_ids)} for o in outputs]
    with open(output_path, "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
