"""Compose a speechllm checkpoint from a pretrained speech encoder and a pretrained causal LM.

    python scripts/build_from_parts.py ENCODER LLM OUTDIR [--frame-average 2] [--encoder-layer 24] [--strides 2 2]

ENCODER and LLM are local directories or Hub ids (e.g. facebook/seamless-m4t-v2-large,
meta-llama/Llama-3.1-8B-Instruct). The SpeechMapper is freshly initialised: train it with train.py.
"""

import argparse
import os

from transformers import AutoFeatureExtractor, AutoTokenizer

from modeling_speechllm import SpeechLLMForConditionalGeneration
from processing_speechllm import SpeechLLMProcessor, reserve_special_tokens

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_from_parts(encoder: str, llm: str, dtype=None, **config_kwargs):
    """(model, processor) with the placeholder and stage-A pad tokens chosen from the LLM's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(llm)
    audio_token, pad_token = reserve_special_tokens(tokenizer)
    model = SpeechLLMForConditionalGeneration.from_pretrained_parts(
        encoder,
        llm,
        dtype=dtype,
        audio_token=audio_token,
        audio_token_id=tokenizer.convert_tokens_to_ids(audio_token),
        mapper_pad_token_id=tokenizer.convert_tokens_to_ids(pad_token),
        **config_kwargs,
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = pad_token
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    feature_extractor = AutoFeatureExtractor.from_pretrained(encoder)
    return model, SpeechLLMProcessor.for_model_config(feature_extractor, tokenizer, model.config)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoder")
    parser.add_argument("llm")
    parser.add_argument("outdir")
    parser.add_argument("--encoder-layer", type=int, default=24)
    parser.add_argument("--frame-average", type=int, default=2)
    parser.add_argument("--strides", type=int, nargs="+", default=[2, 2])
    parser.add_argument("--mapper-widths", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--mapper-layers", type=int, default=6, help="Transformer layers per mapper block")
    parser.add_argument("--mapper-ffn-dim", type=int, default=2560)
    parser.add_argument("--mapper-heads", type=int, default=16)
    args = parser.parse_args()
    model, processor = build_from_parts(
        args.encoder,
        args.llm,
        encoder_layer=args.encoder_layer,
        frame_average=args.frame_average,
        mapper_strides=args.strides,
        mapper_widths=args.mapper_widths,
        mapper_layers_per_block=args.mapper_layers,
        mapper_ffn_dim=args.mapper_ffn_dim,
        mapper_heads=args.mapper_heads,
    )
    model.save_pretrained(args.outdir)
    processor.save_pretrained(args.outdir)
    print(f"wrote {args.outdir}: audio token {processor.audio_token!r}, pad id {model.config.mapper_pad_token_id}")


if __name__ == "__main__":
    main()
