"""Write a tiny RANDOM speechllm checkpoint (a few MB) that loads like a real one: for tests and integrators.

    python scripts/make_tiny_checkpoint.py OUTDIR [--encoder seamless|whisper|w2v-bert] [--seed 0] [--head-dim 12]
    python scripts/make_tiny_checkpoint.py OUTDIR --parts     # its encoder and LLM as two parts, to compose from
    python scripts/make_tiny_checkpoint.py OUTDIR --tts       # a SeamlessM4T-v2 text-to-speech stand-in

Its outputs are noise: the weights are random. Everything is built offline (the tokenizer is trained here).
"""

import argparse
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    PreTrainedTokenizerFast,
    SeamlessM4TFeatureExtractor,
    SeamlessM4Tv2Config,
    Wav2Vec2BertConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
)

from configuration_speechllm import SpeechLLMConfig
from modeling_speechllm import SpeechLLMForConditionalGeneration
from processing_speechllm import TRANSCRIBE_INSTRUCTION, TRANSLATE_INSTRUCTIONS, SpeechLLMProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENCODER_KINDS = ("seamless", "whisper", "w2v-bert")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>", "<|audio|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "speech translation turns spoken english into german italian and chinese text",
    "we present a speech language model that follows instructions about audio",
    "the mapper projects encoder frames into the embedding space of the language model",
    "Question: what is the talk about? Your answer: the talk is about speech recognition",
    "<speech></speech> system user assistant",
    "Das ist ein Test. Questo è un test. 这是一个测试。",
    TRANSCRIBE_INSTRUCTION,
    *TRANSLATE_INSTRUCTIONS.values(),
]


def train_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=["<|audio|>"],
        chat_template=CHATML_TEMPLATE,
    )


def tiny_encoder(kind: str):
    """A tiny encoder config and its feature extractor (real HF classes, random weights)."""
    if kind == "seamless":
        config = SeamlessM4Tv2Config(
            hidden_size=32,
            speech_encoder_layers=2,
            speech_encoder_attention_heads=4,
            speech_encoder_intermediate_size=64,
            feature_projection_input_dim=160,
            conv_depthwise_kernel_size=7,
            add_adapter=False,
            vocab_size=32,
            t2u_vocab_size=32,
            encoder_layers=1,
            decoder_layers=1,
            t2u_encoder_layers=1,
            t2u_decoder_layers=1,
        )
        return config, SeamlessM4TFeatureExtractor()
    if kind == "whisper":
        config = WhisperConfig(
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_layers=1,
            decoder_attention_heads=4,
            decoder_ffn_dim=64,
            num_mel_bins=80,
        )
        return config, WhisperFeatureExtractor(feature_size=80)
    if kind == "w2v-bert":
        config = Wav2Vec2BertConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            output_hidden_size=32,
            feature_projection_input_dim=160,
            conv_depthwise_kernel_size=7,
            add_adapter=False,
            position_embeddings_type="relative_key",
        )
        return config, SeamlessM4TFeatureExtractor()
    raise ValueError(f"unknown encoder kind {kind!r}: use one of {ENCODER_KINDS}")


def tiny_text_config(tokenizer, head_dim: int = 12) -> LlamaConfig:
    """A 2-layer Llama of 4 heads; `head_dim` 32 or more for engines whose kernels take no smaller head (vLLM's CPU
    attention)."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=4 * head_dim,
        intermediate_size=8 * head_dim,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.2,  # a frozen random lm_head this small needs larger weights to express any answer
    )


def build_tiny(kind: str = "seamless", seed: int = 0, head_dim: int = 12):
    torch.manual_seed(seed)
    tokenizer = train_tokenizer()
    encoder_config, feature_extractor = tiny_encoder(kind)
    config = SpeechLLMConfig(
        encoder_config=encoder_config,
        text_config=tiny_text_config(tokenizer, head_dim),
        encoder_layer=2,
        mapper_widths=[32, 40],
        mapper_ffn_dim=64,
        mapper_heads=4,
        mapper_layers_per_block=1,
        mapper_dropout=0.0,
        audio_token="<|audio|>",
        audio_token_id=tokenizer.convert_tokens_to_ids("<|audio|>"),
        mapper_pad_token_id=tokenizer.pad_token_id,
        max_audio_seconds=30.0,
        ctc_head="embedding",  # every checkpoint keeps a compact CTC head (joint CTC/LLM decoding, word times)
    )
    model = SpeechLLMForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model, SpeechLLMProcessor.for_model_config(feature_extractor, tokenizer, config)


def build_tiny_seamless_tts(seed: int = 0):
    """(model, processor) of a tiny random SeamlessM4T-v2 text-to-speech checkpoint (text encoder and decoder,
    text-to-unit model, vocoder with 4 speakers), its generation config holding the tables generate() reads for
    English; it speaks noise at the real model's 16 kHz (synthesis/seamless_tts.py)."""
    from transformers import (
        SeamlessM4TFeatureExtractor,
        SeamlessM4TProcessor,
        SeamlessM4TTokenizerFast,
        SeamlessM4Tv2ForTextToSpeech,
    )

    torch.manual_seed(seed)
    special = ["<pad>", "<unk>", "<s>", "</s>", "__eng__"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer, bpe.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    bpe.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(vocab_size=160, special_tokens=special, show_progress=False))
    tokenizer = SeamlessM4TTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                         pad_token="<pad>", src_lang="eng", tgt_lang="eng", additional_special_tokens=["__eng__"])
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in
           (("pad", "<pad>"), ("bos", "<s>"), ("eos", "</s>"), ("eng", "__eng__"))}
    config = SeamlessM4Tv2Config(
        vocab_size=len(tokenizer), hidden_size=32, max_position_embeddings=128,
        encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=32, decoder_ffn_dim=32, speech_encoder_layers=1, speech_encoder_attention_heads=2,
        speech_encoder_intermediate_size=32, feature_projection_input_dim=160, add_adapter=False,
        t2u_vocab_size=24, char_vocab_size=64, t2u_encoder_layers=1, t2u_decoder_layers=1, t2u_encoder_ffn_dim=32,
        t2u_decoder_ffn_dim=32, t2u_encoder_attention_heads=2, t2u_decoder_attention_heads=2, t2u_max_position_embeddings=512,
        t2u_variance_predictor_embed_dim=32, t2u_variance_predictor_hidden_dim=16,
        # every unit a random text-to-unit model picks must be one the vocoder has: no offset for control symbols
        unit_hifi_gan_vocab_size=24, vocoder_offset=0,
        unit_embed_dim=16, lang_embed_dim=8, spkr_embed_dim=8, vocoder_num_langs=2, vocoder_num_spkrs=4,
        upsample_initial_channel=64,  # the real five upsampling layers (320 samples a unit), each halving the channels
        pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"], decoder_start_token_id=ids["eos"],
    )
    model = SeamlessM4Tv2ForTextToSpeech(config).eval()
    generation = model.generation_config
    vocabulary = tokenizer.get_vocab()
    characters = sorted({character for token in vocabulary for character in token})
    tables = dict(  # the keys the real checkpoint's generation_config.json holds (GenerationConfig.update skips new ones)
        text_decoder_lang_to_code_id={"eng": ids["eng"]}, t2u_lang_code_to_id={"eng": 0}, vocoder_lang_code_to_id={"eng": 0},
        id_to_text={str(index): token for token, index in vocabulary.items()},
        char_to_id={character: 4 + index for index, character in enumerate(characters[: config.char_vocab_size - 4])},
        pad_token_id=ids["pad"], bos_token_id=ids["bos"], eos_token_id=ids["eos"], decoder_start_token_id=ids["eos"],
    )
    for key, value in tables.items():
        setattr(generation, key, value)
    generation._from_model_config = False  # else loading it drops every key a model config lacks, these tables too
    return model, SeamlessM4TProcessor(feature_extractor=SeamlessM4TFeatureExtractor(), tokenizer=tokenizer)


def save_parts(model, tokenizer, outdir) -> str:
    """A speechllm checkpoint's two pretrained parts as they come from the Hub: a full SeamlessM4T-v2 checkpoint (speech
    encoder under `speech_encoder.`, with its feature extractor) in OUTDIR/encoder, and the causal LM with its
    tokenizer in OUTDIR/llm; stand-ins for facebook/seamless-m4t-v2-large and an instruct LLM (train.py
    --encoder_name_or_path / --llm_name_or_path). Returns OUTDIR."""
    from transformers import SeamlessM4TFeatureExtractor, SeamlessM4Tv2Model

    outdir = str(outdir)
    SeamlessM4Tv2Model(model.config.encoder_config).save_pretrained(os.path.join(outdir, "encoder"))
    SeamlessM4TFeatureExtractor().save_pretrained(os.path.join(outdir, "encoder"))
    model.language_model.save_pretrained(os.path.join(outdir, "llm"))
    tokenizer.save_pretrained(os.path.join(outdir, "llm"))
    return outdir


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir")
    parser.add_argument("--encoder", choices=ENCODER_KINDS, default="seamless")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head-dim", type=int, default=12, help="the LLM's attention head size (vLLM on CPU: 32+)")
    parser.add_argument("--tts", action="store_true",
                        help="write a tiny SeamlessM4T-v2 text-to-speech checkpoint instead (synthesis --seamless_tts)")
    parser.add_argument("--parts", action="store_true",
                        help="write the two parts instead (OUTDIR/encoder: a SeamlessM4T-v2 checkpoint, OUTDIR/llm: the "
                             "LLM and tokenizer), to compose from as train.py does for a paper's config")
    args = parser.parse_args()
    if args.tts:
        model, processor = build_tiny_seamless_tts(args.seed)
        model.save_pretrained(args.outdir)
        processor.save_pretrained(args.outdir)
        print(f"wrote a tiny random SeamlessM4T-v2 text-to-speech checkpoint to {args.outdir}")
        return
    model, processor = build_tiny("seamless" if args.parts else args.encoder, args.seed, args.head_dim)
    if args.parts:
        print(f"wrote tiny random parts to {save_parts(model, processor.tokenizer, args.outdir)}/{{encoder,llm}}")
        return
    model.save_pretrained(args.outdir)
    processor.save_pretrained(args.outdir)
    size = sum(os.path.getsize(os.path.join(args.outdir, f)) for f in os.listdir(args.outdir))
    print(f"wrote a tiny random {args.encoder} checkpoint to {args.outdir} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
