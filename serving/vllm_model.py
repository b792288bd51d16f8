"""speechllm as vLLM runs it: our encoder and SpeechMapper unchanged, the causal LM built (and paged) by vLLM.

The shape follows vLLM's own audio models (qwen2_audio, ultravox): processing info, dummy inputs for profiling, a
multimodal processor whose prompt update expands one audio placeholder into the clip's N mapper frames (counted by
`SpeechLLMProcessor`, the same formula the HF model uses), and a model whose `embed_multimodal` returns one
(N, hidden) tensor per clip. Only this module imports vLLM.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from transformers import BatchFeature
from vllm.config import VllmConfig
from vllm.config.speech_to_text import SpeechToTextConfig, SpeechToTextParams
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal, SupportsTranscription
from vllm.model_executor.models.utils import AutoWeightsLoader, init_vllm_registered_model, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import MultiModalDataItems, MultiModalDataParser
from vllm.multimodal.processing import (
    BaseDummyInputsBuilder,
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)

from configuration_speechllm import SpeechLLMConfig
from modeling_speechllm import SpeechEncoder, SpeechMapper, lengths_to_mask
from processing_speechllm import TRANSCRIBE_INSTRUCTION, SpeechLLMProcessor, translation_instruction
from serving.clip_batching import as_clip_list, pad_clips

# The training-only CTC head (stage A) is not part of the served model.
UNSERVED_PREFIXES = ["ctc_head."]


class SpeechLLMProcessingInfo(BaseProcessingInfo):
    def get_hf_config(self) -> SpeechLLMConfig:
        return self.ctx.get_hf_config(SpeechLLMConfig)

    def get_hf_processor(self, **kwargs: object) -> SpeechLLMProcessor:
        return self.ctx.get_hf_processor(SpeechLLMProcessor, **kwargs)

    def get_data_parser(self) -> MultiModalDataParser:
        # Resampled with scipy's polyphase filter, as SpeechLLMProcessor does (torchaudio is not installed here).
        return MultiModalDataParser(
            target_sr=self.get_hf_processor().sampling_rate,
            target_channels=1,
            audio_resample_method="scipy",
            expected_hidden_size=self._get_expected_hidden_size(),
        )

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"audio": None}

    def get_mm_max_tokens_per_item(self, seq_len: int, mm_counts: Mapping[str, int] | None = None) -> Mapping[str, int]:
        return {"audio": self.max_audio_tokens()}

    def max_audio_tokens(self) -> int:
        processor = self.get_hf_processor()
        frames = processor.max_samples // getattr(processor.feature_extractor, "hop_length", 160)
        return int(processor.num_audio_tokens(torch.tensor([frames]))[0])


class SpeechLLMDummyInputsBuilder(BaseDummyInputsBuilder[SpeechLLMProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return self.info.get_hf_processor().audio_token * mm_counts.get("audio", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options=None):
        # The longest clip the model takes in one piece, so that profiling sizes memory for the worst case.
        processor = self.info.get_hf_processor()
        return {
            "audio": self._get_dummy_audios(
                length=processor.max_samples,
                num_audios=mm_counts.get("audio", 0),
                overrides=(mm_options or {}).get("audio"),
            )
        }


class SpeechLLMMultiModalProcessor(BaseMultiModalProcessor[SpeechLLMProcessingInfo]):
    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        """Features of each clip alone (no padding to another clip), with SpeechLLMProcessor's checks: a clip too
        long for the encoder or too short for one speech token is refused with its message (HTTP 400)."""
        processor = self.info.get_hf_processor()
        clips = [np.asarray(clip, dtype=np.float32) for clip in hf_data.get("audio", [])]
        seconds = processor.max_samples / processor.sampling_rate
        processor.check_lengths(clips, f"send it in parts of at most {seconds:.0f} s, one request each")
        features, masks, counts = [], [], []
        for clip in clips:
            data = processor.extract_features([clip])
            features.append(data["input_features"][0])
            masks.append(data["input_features_mask"][0])
            counts.append(int(data["num_audio_tokens"][0]))
        return BatchFeature(
            {"input_features": features, "input_features_mask": masks, "audio_num_tokens": torch.tensor(counts)}
        )

    def _get_mm_fields_config(self, hf_inputs: BatchFeature, hf_processor_mm_kwargs: Mapping[str, object]):
        return {
            "input_features": MultiModalFieldConfig.batched("audio"),
            "input_features_mask": MultiModalFieldConfig.batched("audio"),
            "audio_num_tokens": MultiModalFieldConfig.batched("audio", keep_on_cpu=True),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, object],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        audio_token_id = self.info.get_hf_processor().audio_token_id
        counts = out_mm_kwargs.get_data().get("audio_num_tokens")

        def audio_tokens(item_index: int) -> list[int]:
            return [audio_token_id] * int(counts[item_index])

        return [PromptReplacement(modality="audio", target=[audio_token_id], replacement=audio_tokens)]


def speech_to_text_instruction(task_type: str, to_language: str | None) -> str:
    if task_type == "transcribe" or to_language == "en":
        return TRANSCRIBE_INSTRUCTION
    if to_language is None:
        raise ValueError("a translation request names its target language: to_language=de, it or zh")
    return translation_instruction(to_language)


@MULTIMODAL_REGISTRY.register_processor(
    SpeechLLMMultiModalProcessor, info=SpeechLLMProcessingInfo, dummy_inputs=SpeechLLMDummyInputsBuilder
)
class SpeechLLMForVLLM(nn.Module, SupportsMultiModal, SupportsTranscription):
    """SpeechLLMForConditionalGeneration with the LLM built by vLLM (continuous batching, paged KV cache).

    Also vLLM's speech-to-text model: `/v1/audio/transcriptions` (English speech → English text) and
    `/v1/audio/translations` with `to_language` de/it/zh (English speech → that language; OpenAI's endpoint means
    "into English", which this model's transcription already is). vLLM cuts audio over 30 s at quiet points.
    """

    # Keys: the target languages a request may name. The speech itself is English.
    supported_languages: ClassVar[Mapping[str, str]] = {"en": "English", "de": "German", "it": "Italian", "zh": "Chinese"}

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("audio"):
            return "<|audio|>"
        raise ValueError(f"speechllm takes audio, not {modality}")

    @classmethod
    def get_speech_to_text_config(cls, model_config, task_type: str) -> SpeechToTextConfig:
        config: SpeechLLMConfig = model_config.hf_config
        return SpeechToTextConfig(sample_rate=config.sampling_rate, max_audio_clip_s=int(config.max_audio_seconds))

    @classmethod
    def get_generation_prompt(cls, stt_params: SpeechToTextParams):
        """The chat prompt a `chat/completions` request with this clip and the task's instruction would get."""
        from vllm.tokenizers import cached_tokenizer_from_config

        instruction = speech_to_text_instruction(stt_params.task_type, stt_params.to_language)
        tokenizer = cached_tokenizer_from_config(stt_params.model_config)
        message = {"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": instruction}]}
        prompt = tokenizer.apply_chat_template([message], tokenize=False, add_generation_prompt=True)
        return {"prompt": prompt, "multi_modal_data": {"audio": [(stt_params.audio, stt_params.stt_config.sample_rate)]}}

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = ""):
        super().__init__()
        config: SpeechLLMConfig = vllm_config.model_config.hf_config
        self.config = config
        with self._mark_tower_model(vllm_config, "audio"):
            self.audio_tower = SpeechEncoder(config)
            self.multi_modal_projector = SpeechMapper(config)
        with self._mark_language_model(vllm_config):
            self.language_model = init_vllm_registered_model(
                vllm_config=vllm_config,
                hf_config=config.text_config,
                prefix=maybe_prefix(prefix, "language_model"),
                architectures=config.text_config.architectures,
            )
        # Inference only: no mapper dropout or SpecAugment (the encoder keeps itself in eval mode).
        self.multi_modal_projector.eval()
        self.make_empty_intermediate_tensors = self.language_model.make_empty_intermediate_tensors

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        features = kwargs.get("input_features")
        if features is None:
            return []
        features, mask = pad_clips(
            as_clip_list(features), as_clip_list(kwargs["input_features_mask"]), self.audio_tower.features_are_channels_first
        )
        dtype = next(self.audio_tower.parameters()).dtype
        with torch.no_grad():
            frames, lengths = self.audio_tower(features.to(dtype), mask)
            audio = self.multi_modal_projector(frames.to(self.multi_modal_projector.output_projection.weight.dtype), lengths)
        valid = lengths_to_mask(audio.lengths, audio.embeddings.shape[1])
        return tuple(clip[keep] for clip, keep in zip(audio.embeddings, valid))

    def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None, **kwargs: object):
        if intermediate_tensors is not None:
            inputs_embeds = None
        return self.language_model.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.language_model.compute_logits(hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        return AutoWeightsLoader(self, ignore_unexpected_prefixes=UNSERVED_PREFIXES).load_weights(weights)
