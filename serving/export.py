"""Export a speechllm checkpoint for vLLM: LoRA merged, the processor's prompt as the chat template, greedy decoding.

    python -m serving.export CHECKPOINT OUTPUT_DIR

vLLM builds the LLM itself and loads plain linear weights, so the LoRA adapters are folded in (same tokens, as
bench/RESULTS.md measured for the pipeline). vLLM renders a chat request with the checkpoint's chat template; ours
wraps each user message the way SpeechLLMProcessor.render_user_content does (`<speech>{audio}</speech>\\n Question:
{instruction}\\n\\nYour answer:`) before the LLM's own template runs, so a `chat/completions` request and
`pipe(audio, instruction=...)` give the LLM the same tokens. Runs in the project's venv (it needs peft to merge).
"""

import argparse
import json
import os

from processing_speechllm import SpeechLLMProcessor

# The pipeline decodes greedily (the papers' setting) and stops at 150 new tokens by default; vLLM reads its defaults
# from generation_config.json, so a request that names no temperature gets the same.
GENERATION_DEFAULTS = {"temperature": 0.0, "max_new_tokens": 150}
# The content parts that stand for one clip in vLLM's OpenAI-style message rendering.
AUDIO_PART_TYPES = ("audio", "input_audio", "audio_url")
# How SpeechLLMProcessor joins several clips of one message.
CLIP_SEPARATOR = "</speech>\n<speech>"
# A request's text holding the placeholder would give the LLM a speech slot with no speech behind it.
PLACEHOLDER_IN_TEXT = (
    "the message text holds the audio placeholder {token}, which the server writes itself: send each clip as an "
    "input_audio part (base64 WAV/FLAC/Opus) and the instruction as a text part"
)


def literal(text: str) -> str:
    """A Jinja string literal (JSON's quoting is Jinja's)."""
    return json.dumps(text, ensure_ascii=False)


def user_content_template(prompt_template: str, audio_token: str) -> str:
    """Jinja that turns `message` (string content, or parts of type text/audio) into the processor's prompt text."""
    if prompt_template.count("{audio}") != 1 or prompt_template.count("{instruction}") != 1:
        raise ValueError(f"prompt_template {prompt_template!r} needs exactly one {{audio}} and one {{instruction}}")
    before_audio, rest = prompt_template.split("{audio}")
    if "{instruction}" not in rest:
        raise ValueError(f"prompt_template {prompt_template!r}: the chat template expects {{audio}} before {{instruction}}")
    between, after = rest.split("{instruction}")
    audio_only_tail = rest.split("</speech>")[0] + "</speech>"  # the processor's prompt for audio with no text
    return (
        "{%- if message['content'] is string -%}{%- set content = message['content'] -%}{%- else -%}"
        "{%- set parts = namespace(audio=[], text=[]) -%}"
        "{%- for part in message['content'] -%}"
        f"{{%- if part['type'] in {list(AUDIO_PART_TYPES)} -%}}"
        f"{{%- set parts.audio = parts.audio + [{literal(audio_token)}] -%}}"
        f"{{%- elif part['type'] == 'text' and {literal(audio_token)} in part['text'] -%}}"
        f"{{{{- raise_exception({literal(PLACEHOLDER_IN_TEXT.format(token=audio_token))}) -}}}}"
        "{%- elif part['type'] == 'text' -%}{%- set parts.text = parts.text + [part['text']] -%}{%- endif -%}"
        "{%- endfor -%}"
        "{%- set instruction = parts.text | join(' ') -%}"
        f"{{%- set audio = parts.audio | join({literal(CLIP_SEPARATOR)}) -%}}"
        "{%- if not parts.audio -%}{%- set content = instruction -%}"
        f"{{%- elif instruction -%}}{{%- set content = {literal(before_audio)} ~ audio ~ {literal(between)} ~ instruction"
        f" ~ {literal(after)} -%}}"
        f"{{%- else -%}}{{%- set content = {literal(before_audio)} ~ audio ~ {literal(audio_only_tail)} -%}}"
        "{%- endif -%}{%- endif -%}"
    )


def serving_chat_template(llm_template: str, prompt_template: str, audio_token: str) -> str:
    """The LLM's chat template, run on messages whose content was first rendered as SpeechLLMProcessor renders it."""
    return (
        "{#- speechllm: user content rendered as SpeechLLMProcessor renders it, then the LLM's own template -#}\n"
        "{%- set rendered = namespace(messages=[]) -%}"
        "{%- for message in messages -%}"
        + user_content_template(prompt_template, audio_token)
        + "{%- set rendered.messages = rendered.messages + [dict(message, content=content)] -%}"
        "{%- endfor -%}"
        "{%- set messages = rendered.messages -%}\n" + llm_template
    )


def export_for_vllm(checkpoint: str, output_dir: str) -> str:
    """Write `output_dir`: merged weights, config, processor, tokenizer, chat template and generation defaults."""
    from modeling_speechllm import SpeechLLMForConditionalGeneration

    model = SpeechLLMForConditionalGeneration.from_pretrained(checkpoint)
    processor = SpeechLLMProcessor.from_pretrained(checkpoint)
    if model.config.lora:
        model.merge_lora()
    # vLLM's LLM reads the text config; the top level says the same so that either reading ties the head.
    model.config.tie_word_embeddings = bool(getattr(model.config.text_config, "tie_word_embeddings", False))
    model.save_pretrained(output_dir)
    llm_template = processor.chat_template or processor.tokenizer.chat_template
    if not llm_template:
        raise ValueError(f"{checkpoint} has no chat template: vLLM needs one to render chat requests")
    template = serving_chat_template(llm_template, processor.prompt_template, processor.audio_token)
    processor.chat_template = processor.tokenizer.chat_template = template  # both are saved as chat_template.jinja
    processor.save_pretrained(output_dir)
    write_generation_defaults(output_dir)
    return output_dir


def write_generation_defaults(output_dir: str):
    path = os.path.join(output_dir, "generation_config.json")
    with open(path) as f:
        config = json.load(f)
    config.update(GENERATION_DEFAULTS)
    with open(path, "w") as f:
        json.dump(config, f, indent=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a speechllm checkpoint directory (LoRA attached or merged)")
    parser.add_argument("output_dir")
    args = parser.parse_args()
    print(f"exported {args.checkpoint} for vLLM to {export_for_vllm(args.checkpoint, args.output_dir)}")


if __name__ == "__main__":
    main()
