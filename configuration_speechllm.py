"""Configuration of speechllm: a frozen speech encoder, the SpeechMapper projector and a causal LM.

The encoder and the language model are described by their own Hugging Face configs, so any speech encoder
(SeamlessM4T-v2, Whisper, Wav2Vec2-BERT) and any causal LM (Llama, Qwen3, SmolLM2) fit by configuration.
"""

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

# Encoders whose convolutional front end shortens the feature sequence before the Transformer layers.
# Keyed by the encoder config's `model_type`; an encoder not listed keeps one output frame per feature frame.
ENCODER_FEATURE_STRIDES = {"whisper": 2}

# The papers' chat prompt (IWSLT 2026): audio in the user turn, then the instruction in the target language.
DEFAULT_PROMPT_TEMPLATE = "<speech>{audio}</speech>\n Question: {instruction}\n\nYour answer:"
# Its text-only twin for the MT/QA data of stages B and C: the source text stands where the speech was.
DEFAULT_TEXT_PROMPT_TEMPLATE = "{text}\n Question: {instruction}\n\nYour answer:"

LLAMA_3_1_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "rope_parameters": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    },
}


CTC_HEADS = ("vocabulary", "embedding", "none")


def speech_output_lengths(feature_lengths, feature_stride: int, frame_average: int, mapper_strides):
    """Mapper frames from valid feature-extractor frames; THE length formula, shared by model and processor.

    encoder frames = ceil(features / feature_stride); averaged = ceil(encoder / frame_average); each mapper block
    keeps floor(frames / stride). Works on ints and on integer tensors.
    """
    frames = -(-feature_lengths // feature_stride)
    frames = -(-frames // frame_average)
    for stride in mapper_strides:
        frames = frames // stride
    return frames


class SpeechLLMConfig(PreTrainedConfig):
    r"""
    encoder_config: config of the speech encoder (default: SeamlessM4T-v2-large, whose speech encoder is used).
    text_config: config of the causal language model (default: Llama-3.1-8B-Instruct shapes).
    encoder_layer: which encoder hidden state feeds the mapper (0 = embeddings, N = output of layer N).
    frame_average: number of consecutive encoder frames averaged into one before the mapper.
    mapper_conv_kernel / mapper_strides: Conv1d kernel and the stride of each mapper block (one entry per block).
    mapper_layers_per_block / mapper_widths / mapper_ffn_dim / mapper_heads: the Transformer layers of each block.
        Block i runs at width `mapper_widths[i]`; the up-projection after the last block goes to the LLM width.
    audio_token / audio_token_id: the placeholder that the processor expands to one token per mapper frame.
    mapper_pad_token_id: the token whose embedding pads stage-A targets (2026: an untrained reserved token).
    max_audio_seconds: longer audio is refused with a clear error (never cut).
    mask_time_prob / mask_time_length / mask_feature_prob / mask_feature_length: SpecAugment on the averaged encoder
        frames that enter the SpeechMapper, while training only (stages A and C alike: stage A trains on cached
        encoder outputs, so the masks go where both stages can apply them); as in transformers' wav2vec2/Whisper
        configs, `mask_*_prob` × length / mask_*_length spans are masked. 0 (the default) turns them off.
    loss_alpha, loss_gamma: stage-A weights `α·MSE_words + (10−α)·MSE_pad − γ·cosine`.
    loss_vocabulary_sample: 2026 loss only: None runs the contrastive and CTC terms over the whole vocabulary; N runs
        them over the batch's target tokens plus N rows drawn at random (a sampled softmax: a 49K-token vocabulary
        otherwise costs more than the mapper itself on a CPU).
    loss_sigma: weight of the MSE term in stage B/C, `(1−σ)·CE + σ·MSE` (0 disables it).
    stage_a_loss: "mse_cosine" (SpeechMapper 2025) or "l1_cosine_contrastive_ctc" (IWSLT 2026).
    ctc_head: the CTC head read from mapper block 1: "vocabulary" (IWSLT 2026: a linear layer over the whole LLM
        vocabulary, 58M parameters for Qwen2.5 from a 384-wide block), "embedding" (compact: a projection into the
        LLM's embedding space, scored against the LLM's own input-embedding rows, plus a bias per token), or "none".
        None (the default) keeps older checkpoints as they were: "vocabulary" with the 2026 loss, else "none".
        The head reads what the mapper heard: stage A trains it, `joint_ctc_weight` keeps it trained in stages B/C,
        and generation can hold the LLM to it (`ctc_weight`).
    joint_ctc_weight: weight of the CTC term beside the CE in stages B/C (0 turns it off), so that the mapper's
        reading does not drift while the LLM learns and the CTC head stays fitted to it.
    transcribe_ctc_weight / transcribe_num_beams: how the pipeline decodes `task="transcribe"` unless told otherwise:
        λ of joint CTC/LLM scoring (0: the LLM alone, greedy as in the papers) and the beam size. Set where a trained
        CTC head was measured to read better with them (default_model/TRIALS.md).
    lora: None, or a dict of peft `LoraConfig` arguments applied to the language model only.
    base_models: {"encoder": ..., "llm": ...}, the Hub ids (or paths) of the pretrained parts it was built from: the
        model card's `base_model`. None for a model of random parts.
    """

    model_type = "speechllm"
    sub_configs_defaults = {
        "encoder_config": SubConfigSpec(config_class=AutoConfig, model_type="seamless_m4t_v2"),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama", init_kwargs=LLAMA_3_1_8B),
    }

    encoder_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    encoder_layer: int = 24
    frame_average: int = 2
    mapper_conv_kernel: int = 6
    mapper_strides: tuple[int, ...] | list[int] = (2, 2)
    mapper_layers_per_block: int = 6
    mapper_widths: tuple[int, ...] | list[int] = (1024, 2048)
    mapper_ffn_dim: int = 2560
    mapper_heads: int = 16
    mapper_dropout: float = 0.1
    audio_token: str = "<|audio|>"
    audio_token_id: int | None = None
    mapper_pad_token_id: int | None = None
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    text_prompt_template: str = DEFAULT_TEXT_PROMPT_TEMPLATE
    max_audio_seconds: float = 60.0
    mask_time_prob: float = 0.0
    mask_time_length: int = 4
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 64
    sampling_rate: int = 16000
    loss_alpha: float = 5.0
    loss_gamma: float = 100.0
    loss_sigma: float = 0.0
    stage_a_loss: str = "mse_cosine"
    contrastive_weight: float = 0.1
    contrastive_temperature: float = 0.1
    ctc_weight: float = 1.0
    ctc_head: str | None = None
    joint_ctc_weight: float = 0.0
    transcribe_ctc_weight: float = 0.0
    transcribe_num_beams: int = 1
    loss_vocabulary_sample: int | None = None
    lora: dict | None = None
    base_models: dict | None = None
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.drop_custom_pipelines_when_registered_here()
        self.mapper_strides = list(self.mapper_strides)
        self.mapper_widths = list(self.mapper_widths)
        self.validate_mapper()

    def drop_custom_pipelines_when_registered_here(self):
        """Inside the project the pipeline is registered in-process: transformers would otherwise insist on
        trust_remote_code for the checkpoint's copy. save_pretrained writes `custom_pipelines` again."""
        if __name__.startswith("transformers_modules") or not getattr(self, "custom_pipelines", None):
            return
        from transformers.pipelines import PIPELINE_REGISTRY

        if set(self.custom_pipelines) <= set(PIPELINE_REGISTRY.get_supported_tasks()):
            del self.custom_pipelines

    def validate_mapper(self):
        if len(self.mapper_strides) != len(self.mapper_widths):
            raise ValueError(
                f"mapper_strides {self.mapper_strides} and mapper_widths {self.mapper_widths} must have one entry "
                "per mapper block"
            )
        if any(stride < 1 or stride > self.mapper_conv_kernel for stride in self.mapper_strides):
            raise ValueError(f"every mapper stride must be in [1, kernel={self.mapper_conv_kernel}]")
        self.check_spec_augment()
        if self.stage_a_loss not in ("mse_cosine", "l1_cosine_contrastive_ctc"):
            raise ValueError(f"unknown stage_a_loss {self.stage_a_loss!r}: use mse_cosine or l1_cosine_contrastive_ctc")
        if self.ctc_head not in (None, *CTC_HEADS):
            raise ValueError(f"unknown ctc_head {self.ctc_head!r}: use one of {', '.join(CTC_HEADS)}")

    def check_spec_augment(self):
        """Also called when masking: values given to from_pretrained(**kwargs) are set after __post_init__."""
        if self.mask_feature_prob > 0 and self.mask_feature_length >= self.encoder_hidden_size:
            raise ValueError(
                f"mask_feature_length={self.mask_feature_length} must be smaller than the encoder width "
                f"{self.encoder_hidden_size}: lower it or set mask_feature_prob=0"
            )

    @property
    def ctc_head_kind(self) -> str:
        """The CTC head this config builds: `ctc_head`, or for older configs what their stage-A loss implied."""
        if self.ctc_head is not None:
            return self.ctc_head
        return "vocabulary" if self.stage_a_loss == "l1_cosine_contrastive_ctc" else "none"

    @property
    def encoder_hidden_size(self) -> int:
        return self.encoder_config.hidden_size

    @property
    def encoder_num_layers(self) -> int:
        encoder = self.encoder_config
        for name in ("speech_encoder_layers", "encoder_layers", "num_hidden_layers"):
            if getattr(encoder, name, None):
                return getattr(encoder, name)
        raise ValueError(f"cannot tell how many layers the {encoder.model_type} encoder has")

    @property
    def encoder_feature_stride(self) -> int:
        return ENCODER_FEATURE_STRIDES.get(self.encoder_config.model_type, 1)

    @property
    def total_downsampling(self) -> int:
        """Encoder frames per mapper frame (8 with the paper's defaults)."""
        factor = self.frame_average
        for stride in self.mapper_strides:
            factor *= stride
        return factor


SpeechLLMConfig.register_for_auto_class()
if not __name__.startswith("transformers_modules"):
    # In-project imports: AutoConfig knows "speechllm", so loading a checkpoint's tokenizer through the class
    # (SpeechLLMProcessor.from_pretrained) does not stop to ask about the checkpoint's remote code.
    AutoConfig.register("speechllm", SpeechLLMConfig, exist_ok=True)

__all__ = ["SpeechLLMConfig", "speech_output_lengths"]
