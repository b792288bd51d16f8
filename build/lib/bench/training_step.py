"""One projector training step, in a process of its own (so that its peak memory is the whole process's):

    python bench/training_step.py --mode stage_a|llm_in_the_loop --shape default|1b --batch 8 --steps 5

stage_a: the SpeechMapper against the LLM's embedding table (cached encoder frames; the LLM is never built).
llm_in_the_loop: the same mapper, its output placed in the prompt, cross-entropy on the transcript through the
frozen LLM (how Ultravox and the 2025 system train the projector). Same frames, same transcripts, same optimizer.
Prints one JSON line: median step seconds and peak resident memory.
"""

import argparse

import torch
from transformers import AutoConfig

from bench.common import default_checkpoint, median_seconds, peak_rss_gib, print_result, transcription_prompt
from configuration_speechllm import SpeechLLMConfig
from modeling_speechllm import SpeechLLMForConditionalGeneration
from processing_speechllm import SpeechLLMProcessor, pad_rows
from training.data import pad_token_rows
from training.mapper_pretraining import SpeechMapperForPretraining

# A ~1.1B Llama-style LLM (TinyLlama's widths): where stage A's advantage must grow.
LLM_1B = {
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
}  # the vocabulary stays the default's (its LLM's + the audio and pad tokens)


def bench_config(checkpoint: str, shape: str, **overrides) -> SpeechLLMConfig:
    if shape == "1b":
        # A Llama config object of its own that shares only the default's vocabulary (a dict would be merged into the
        # default LLM's config, whose fields belong to its family and size: Qwen2's 24 `layer_types` refuse 22 layers).
        text = SpeechLLMConfig.from_pretrained(checkpoint).text_config
        llama = {key: value for key, value in LLM_1B.items() if key != "model_type"}
        overrides["text_config"] = AutoConfig.for_model(
            LLM_1B["model_type"], vocab_size=text.vocab_size, tie_word_embeddings=text.tie_word_embeddings, **llama
        )
    return SpeechLLMConfig.from_pretrained(checkpoint, **overrides)


def synthetic_batch(config: SpeechLLMConfig, batch: int, seed: int = 0) -> dict:
    """Cached-encoder-like frames of 2–8 s clips (25 frames/s after averaging) and transcripts of half as many
    tokens as the mapper gives frames (≈3 tokens/s, the rate of speech)."""
    generator = torch.Generator().manual_seed(seed)
    seconds = torch.linspace(2.0, 8.0, batch)
    frames_per_second = 100 / config.encoder_feature_stride / config.frame_average / 2  # mel 100/s, conv, averaging
    lengths = (seconds * frames_per_second).long()
    frames = torch.randn(batch, int(lengths.max()), config.encoder_hidden_size, generator=generator)
    mapper_frames = lengths
    for stride in config.mapper_strides:
        mapper_frames = mapper_frames // stride
    transcripts = [
        torch.randint(100, config.text_config.vocab_size - 100, (int(n) // 2,), generator=generator).tolist()
        for n in mapper_frames
    ]
    return {"encoder_frames": frames, "encoder_lengths": lengths, "transcripts": transcripts, "mapper_frames": mapper_frames}


def stage_a_step(checkpoint: str, config: SpeechLLMConfig, shape: str, batch: dict):
    if shape == "default":
        losses = ("stage_a_loss", "loss_vocabulary_sample")
        model = SpeechMapperForPretraining.from_speechllm_checkpoint(checkpoint, **{k: getattr(config, k) for k in losses})
    else:
        model = SpeechMapperForPretraining(config)
        model.embedding_table.normal_(std=0.02)
    model.train()
    inputs = {
        "encoder_frames": batch["encoder_frames"],
        "encoder_lengths": batch["encoder_lengths"],
        "transcript_ids": pad_token_rows(batch["transcripts"]),
    }
    return model, lambda: model(**inputs).loss


def prompt_rows(processor: SpeechLLMProcessor, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The real transcription prompt (chat template, placeholders expanded to each clip's mapper frames) + the
    transcript as target: input_ids, attention_mask, labels (right-padded)."""
    prompt = transcription_prompt(processor)
    prompts = processor.expand_placeholders([prompt] * len(batch["transcripts"]), batch["mapper_frames"].tolist())
    end = processor.tokenizer.convert_tokens_to_ids(processor.end_of_turn_token)
    rows, labels = [], []
    for text, transcript in zip(prompts, batch["transcripts"]):
        prompt_ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        rows.append(prompt_ids + transcript + [end])
        labels.append([-100] * len(prompt_ids) + transcript + [end])
    padded = pad_rows(rows, labels, processor.tokenizer.pad_token_id, "right")
    return padded["input_ids"], padded["attention_mask"], padded["labels"]


def llm_in_the_loop_step(checkpoint: str, config: SpeechLLMConfig, shape: str, batch: dict):
    if shape == "default":
        model = SpeechLLMForConditionalGeneration.from_pretrained(checkpoint)
    else:
        model = SpeechLLMForConditionalGeneration(config)
    model.train()
    model.language_model.requires_grad_(False)
    input_ids, attention_mask, labels = prompt_rows(SpeechLLMProcessor.from_pretrained(checkpoint), batch)

    def loss():
        audio = model.multi_modal_projector(batch["encoder_frames"], batch["encoder_lengths"])
        embeds = model.merge_audio_embeddings(input_ids, model.get_input_embeddings()(input_ids), audio)
        return model.language_model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels).loss

    return model, loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["stage_a", "llm_in_the_loop"], required=True)
    parser.add_argument("--shape", choices=["default", "1b"], default="default")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--stage_a_loss", default="mse_cosine", help="stage_a: mse_cosine | l1_cosine_contrastive_ctc")
    parser.add_argument("--loss_vocabulary_sample", type=int, help="stage_a, 2026 loss: sampled vocabulary rows")
    args = parser.parse_args()
    torch.manual_seed(0)
    checkpoint = default_checkpoint()
    config = bench_config(
        checkpoint, args.shape, stage_a_loss=args.stage_a_loss, loss_vocabulary_sample=args.loss_vocabulary_sample
    )
    batch = synthetic_batch(config, args.batch)
    build = stage_a_step if args.mode == "stage_a" else llm_in_the_loop_step
    model, loss = build(checkpoint, config, args.shape, batch)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()

    seconds = median_seconds(step, repeats=args.steps, warmup=1)
    print_result({"mode": args.mode, "shape": args.shape, "stage_a_loss": config.stage_a_loss, "step_s": seconds, "peak_rss_gib": peak_rss_gib()})


if __name__ == "__main__":
    main()
