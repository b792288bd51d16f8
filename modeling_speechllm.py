"""speechllm: a frozen speech encoder, the SpeechMapper projector and a causal LM (NAVER LABS Europe, IWSLT 2025/2026).

Read top to bottom: the length function, the encoder wrapper, the SpeechMapper, the stage-A losses, the model.
"""

import json
import os
import shutil
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GenerationMixin, LogitsProcessorList, PreTrainedModel
from transformers import initialization as hf_init
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutputWithPast, ModelOutput
from transformers.models.seamless_m4t_v2.modeling_seamless_m4t_v2 import SeamlessM4Tv2SpeechEncoder
from transformers.models.whisper.modeling_whisper import WhisperEncoder

try:
    from .configuration_speechllm import SpeechLLMConfig, speech_output_lengths
    from .ctc_decoding import CTCPrefixLogitsProcessor
except ImportError:
    from configuration_speechllm import SpeechLLMConfig, speech_output_lengths
    from ctc_decoding import CTCPrefixLogitsProcessor


class WhisperValidFramesEncoder(WhisperEncoder):
    """Whisper's encoder on the batch's longest clip instead of a fixed 30 s window.

    Whisper pads every clip to 30 s; here it sees only the valid frames of each clip (the first T positional
    embeddings, padded frames zeroed before each convolution and masked out of attention), so a clip encodes the
    same alone or in a batch and a 5 s clip costs a sixth of a 30 s window.
    """

    def forward(self, input_features: torch.Tensor, attention_mask=None, output_hidden_states=False, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones(input_features.shape[0], input_features.shape[-1], dtype=torch.long, device=input_features.device)
        max_frames = self.embed_positions.num_embeddings * self.conv1.stride[0] * self.conv2.stride[0]
        if input_features.shape[-1] > max_frames:
            raise ValueError(f"Whisper takes at most {max_frames} mel frames (30 s), got {input_features.shape[-1]}")
        mel_mask = attention_mask[:, None, :].to(input_features.dtype)
        hidden = nn.functional.gelu(self.conv1(input_features * mel_mask)) * mel_mask
        hidden = nn.functional.gelu(self.conv2(hidden)).permute(0, 2, 1)
        hidden = hidden + self.embed_positions.weight[: hidden.shape[1]]
        frame_mask = attention_mask[:, :: self.conv2.stride[0]].bool()
        blocked = torch.finfo(hidden.dtype).min
        attention_bias = torch.zeros(frame_mask.shape, dtype=hidden.dtype, device=hidden.device)
        attention_bias = attention_bias.masked_fill(~frame_mask.to(hidden.device), blocked)[:, None, None, :]
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, attention_bias)
            states.append(hidden)
        hidden = self.layer_norm(hidden)
        states[-1] = hidden  # as WhisperEncoder reports it: the last state after the final layer norm
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=tuple(states) if output_hidden_states else None)


# Encoder-only classes for configs whose default AutoModel would also build a decoder we never run.
ENCODER_CLASSES = {"seamless_m4t_v2": SeamlessM4Tv2SpeechEncoder, "whisper": WhisperValidFramesEncoder}
LORA_DEFAULTS = {
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def mapper_output_lengths(feature_lengths: torch.Tensor, config: SpeechLLMConfig) -> torch.Tensor:
    """Mapper frames produced by clips with `feature_lengths` valid feature-extractor frames."""
    return speech_output_lengths(
        feature_lengths, config.encoder_feature_stride, config.frame_average, config.mapper_strides
    )


def lengths_to_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


# ---------------------------------------------------------------------------------------------------------------
# Encoder wrapper
# ---------------------------------------------------------------------------------------------------------------


def build_speech_encoder(encoder_config) -> nn.Module:
    encoder_class = ENCODER_CLASSES.get(encoder_config.model_type)
    if encoder_class is None:
        return AutoModel.from_config(encoder_config)
    return encoder_class(encoder_config)


def average_frames(frames: torch.Tensor, lengths: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average every `k` consecutive valid frames; a last partial group is averaged over its valid frames only."""
    if k == 1:
        return frames, lengths
    batch, time, dim = frames.shape
    valid = lengths_to_mask(lengths, time).to(frames.dtype)
    padded_time = -(-time // k) * k
    frames = F.pad(frames * valid[..., None], (0, 0, 0, padded_time - time))
    valid = F.pad(valid, (0, padded_time - time))
    sums = frames.view(batch, padded_time // k, k, dim).sum(2)
    counts = valid.view(batch, padded_time // k, k).sum(2).clamp(min=1)
    return sums / counts[..., None], -(-lengths // k)


class SpeechEncoder(nn.Module):
    """Frozen speech encoder: hidden state of `encoder_layer`, averaged every `frame_average` frames."""

    def __init__(self, config: SpeechLLMConfig):
        super().__init__()
        self.config = config
        self.encoder = build_speech_encoder(config.encoder_config)
        self.encoder.requires_grad_(False)

    def train(self, mode: bool = True):
        # The encoder is frozen: its dropout stays off even while the rest of the model trains.
        super().train(mode)
        self.encoder.eval()
        return self

    def encoder_frame_lengths(self, input_features_mask: torch.Tensor) -> torch.Tensor:
        stride = self.config.encoder_feature_stride
        return -(-input_features_mask.sum(-1) // stride)

    @property
    def features_are_channels_first(self) -> bool:
        """Whisper-style encoders take (batch, mel bins, frames); Seamless and W2V-BERT (batch, frames, channels)."""
        return bool(getattr(self.config.encoder_config, "num_mel_bins", None))

    def silent_inputs(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The shortest all-zero input this encoder accepts that still gives one mapper frame."""
        encoder = self.config.encoder_config
        frames = self.config.total_downsampling * self.config.encoder_feature_stride
        if self.features_are_channels_first:
            features = torch.zeros(1, encoder.num_mel_bins, frames, device=device)
        else:
            features = torch.zeros(1, frames, encoder.feature_projection_input_dim, device=device)
        mask = torch.ones(1, frames, dtype=torch.long, device=device)
        return features.to(next(self.encoder.parameters()).dtype), mask

    def select_layer(self, hidden_states: tuple) -> torch.Tensor:
        """Output of layer `encoder_layer` (1-based); 0 is the embeddings where the encoder reports them."""
        num_layers = self.config.encoder_num_layers
        has_embeddings = len(hidden_states) == num_layers + 1  # Whisper reports them, Seamless does not
        index = self.config.encoder_layer - (0 if has_embeddings else 1)
        if not 0 <= index < len(hidden_states):
            raise ValueError(f"encoder_layer={self.config.encoder_layer} but the encoder has {num_layers} layers")
        return hidden_states[index]

    def forward(self, input_features: torch.Tensor, input_features_mask: torch.Tensor):
        # The processor's features are float32; a model loaded with dtype=torch.bfloat16 takes them in its own dtype.
        input_features = input_features.to(next(self.encoder.parameters()).dtype)
        with torch.no_grad():
            outputs = self.encoder(
                input_features, attention_mask=input_features_mask, output_hidden_states=True, return_dict=True
            )
        frames = self.select_layer(outputs.hidden_states)
        lengths = self.encoder_frame_lengths(input_features_mask).clamp(max=frames.shape[1])
        return average_frames(frames, lengths, self.config.frame_average)


# ---------------------------------------------------------------------------------------------------------------
# SpeechMapper
# ---------------------------------------------------------------------------------------------------------------


class StridedConv(nn.Module):
    """Conv1d whose output has exactly floor(T / stride) frames (padding kernel − stride, split left/right)."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int):
        super().__init__()
        self.stride = stride
        self.left_pad = (kernel - stride) // 2
        self.right_pad = kernel - stride - self.left_pad
        self.conv = nn.Conv1d(in_dim, out_dim, kernel, stride=stride)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor):
        # Zero the padded frames: the kernel reaches past a clip's end, and a batch must match a single clip.
        frames = frames * lengths_to_mask(lengths, frames.shape[1])[..., None].to(frames.dtype)
        frames = F.pad(frames.transpose(1, 2), (self.left_pad, self.right_pad))
        return self.conv(frames).transpose(1, 2), lengths // self.stride


class MapperBlock(nn.Module):
    """Conv1d (downsampling) → Transformer encoder layers → linear up-projection to the next width."""

    def __init__(self, config: SpeechLLMConfig, in_dim: int, width: int, out_dim: int, stride: int):
        super().__init__()
        self.conv = StridedConv(in_dim, width, config.mapper_conv_kernel, stride)
        layer = nn.TransformerEncoderLayer(
            width,
            config.mapper_heads,
            config.mapper_ffn_dim,
            dropout=config.mapper_dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.mapper_layers_per_block, enable_nested_tensor=False)
        self.up_projection = nn.Linear(width, out_dim)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor):
        frames, lengths = self.conv(frames, lengths)
        padding_mask = ~lengths_to_mask(lengths, frames.shape[1])
        hidden = self.layers(frames, src_key_padding_mask=padding_mask)
        return hidden, self.up_projection(hidden), lengths


@dataclass
class SpeechMapperOutput(ModelOutput):
    embeddings: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    first_block_hidden: torch.Tensor | None = None
    first_block_lengths: torch.Tensor | None = None


def spec_augment(frames: torch.Tensor, lengths: torch.Tensor, config: SpeechLLMConfig) -> torch.Tensor:
    """SpecAugment with transformers' own mask sampler (wav2vec2/Whisper): time spans over the valid frames and
    feature spans over the channels set to zero; draws from numpy's RNG, which the Trainer seeds and checkpoints."""
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices

    config.check_spec_augment()
    batch, time, dims = frames.shape
    if config.mask_time_prob > 0:
        valid = lengths_to_mask(lengths, time)
        spans = _compute_mask_indices((batch, time), config.mask_time_prob, config.mask_time_length, valid.long(), min_masks=0)
        frames = frames.masked_fill(torch.from_numpy(spans).to(frames.device)[..., None], 0.0)
    if config.mask_feature_prob > 0:
        spans = _compute_mask_indices((batch, dims), config.mask_feature_prob, config.mask_feature_length, min_masks=0)
        frames = frames.masked_fill(torch.from_numpy(spans).to(frames.device)[:, None, :], 0.0)
    return frames


class SpeechMapper(nn.Module):
    """Maps averaged encoder frames into the LLM's input-embedding space, `prod(mapper_strides)`× shorter."""

    def __init__(self, config: SpeechLLMConfig):
        super().__init__()
        self.config = config
        llm_width = config.text_config.hidden_size
        in_dims = [config.encoder_hidden_size, *config.mapper_widths[1:]]
        out_dims = [*config.mapper_widths[1:], llm_width]
        self.blocks = nn.ModuleList(
            MapperBlock(config, in_dim, width, out_dim, stride)
            for in_dim, width, out_dim, stride in zip(in_dims, config.mapper_widths, out_dims, config.mapper_strides)
        )
        self.output_projection = nn.Linear(llm_width, llm_width)

    def forward(self, frames: torch.Tensor, lengths: torch.Tensor) -> SpeechMapperOutput:
        if self.training and (self.config.mask_time_prob > 0 or self.config.mask_feature_prob > 0):
            frames = spec_augment(frames, lengths, self.config)
        first_hidden, first_lengths = None, None
        for block in self.blocks:
            hidden, frames, lengths = block(frames, lengths)
            if first_hidden is None:
                first_hidden, first_lengths = hidden, lengths
        embeddings = self.output_projection(frames)
        return SpeechMapperOutput(embeddings, lengths, first_hidden, first_lengths)


# ---------------------------------------------------------------------------------------------------------------
# Stage-A losses (no LLM layers: only its input-embedding table)
# ---------------------------------------------------------------------------------------------------------------


def stage_a_target_ids(
    transcript_ids: torch.Tensor,
    transcript_lengths: torch.Tensor,
    output_lengths: torch.Tensor,
    num_frames: int,
    pad_token_id: int,
) -> torch.Tensor:
    """Target ids: the transcript tokens, then the pad token up to the mapper's output length."""
    too_long = transcript_lengths > output_lengths
    if too_long.any():
        row = int(too_long.nonzero()[0])
        raise ValueError(
            f"transcript {row} has {int(transcript_lengths[row])} tokens but its audio gives only "
            f"{int(output_lengths[row])} mapper frames: drop this example or lower the mapper's downsampling"
        )
    positions = torch.arange(num_frames, device=transcript_ids.device)[None, :]
    target_ids = torch.full((len(transcript_ids), num_frames), pad_token_id, device=transcript_ids.device)
    width = min(transcript_ids.shape[1], num_frames)
    is_word = positions[:, :width] < transcript_lengths[:, None]
    target_ids[:, :width] = torch.where(is_word, transcript_ids[:, :width], target_ids[:, :width])
    return target_ids


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def mse_cosine_loss(outputs, targets, word_mask, pad_mask, alpha, gamma):
    """SpeechMapper (2025): α·MSE_words + (10−α)·MSE_pad − γ·cosine (cosine over word positions)."""
    squared = (outputs - targets).pow(2).mean(-1)
    mse_words = masked_mean(squared, word_mask)
    mse_pad = masked_mean(squared, pad_mask)
    cosine = masked_mean(F.cosine_similarity(outputs, targets, dim=-1), word_mask)
    total = alpha * mse_words + (10 - alpha) * mse_pad - gamma * cosine
    return total, {"mse_words": mse_words, "mse_pad": mse_pad, "cosine": cosine}


def contrastive_loss(outputs, target_ids, valid_mask, embedding_table, temperature):
    """Softmax over the whole vocabulary of cosine similarities; the target row is the positive."""
    logits = F.normalize(outputs, dim=-1) @ F.normalize(embedding_table, dim=-1).T / temperature
    losses = F.cross_entropy(logits.flatten(0, 1), target_ids.flatten(), reduction="none").view(target_ids.shape)
    return masked_mean(losses, valid_mask)


def ctc_loss(ctc_logits, ctc_lengths, transcript_ids, transcript_lengths, blank_id):
    log_probs = ctc_logits.float().log_softmax(-1).transpose(0, 1)
    targets = transcript_ids.clamp(min=0)
    return F.ctc_loss(log_probs, targets, ctc_lengths, transcript_lengths, blank=blank_id, zero_infinity=True)


@dataclass
class StageATargets:
    ids: torch.Tensor
    embeddings: torch.Tensor
    word_mask: torch.Tensor
    pad_mask: torch.Tensor


@dataclass
class StageAOutput(ModelOutput):
    loss: torch.Tensor | None = None
    parts: dict | None = None
    embeddings: torch.Tensor | None = None
    lengths: torch.Tensor | None = None


def stage_a_targets(config, table, transcript_ids, transcript_lengths, audio: SpeechMapperOutput) -> StageATargets:
    """Embedding rows of the transcript padded with the pad embedding, and which frames are words / padding."""
    num_frames = audio.embeddings.shape[1]
    ids = stage_a_target_ids(transcript_ids, transcript_lengths, audio.lengths, num_frames, config.mapper_pad_token_id)
    valid = lengths_to_mask(audio.lengths, num_frames)
    word_mask = lengths_to_mask(transcript_lengths + 1, num_frames) & valid  # real tokens + the first pad
    return StageATargets(ids, table[ids].detach(), word_mask.float(), (valid & ~word_mask).float())


def stage_a_loss(config, table, ctc_head, audio: SpeechMapperOutput, transcript_ids, transcript_lengths=None) -> StageAOutput:
    """The stage-A loss of `config.stage_a_loss` for mapper outputs `audio`; `table` is the LLM's embedding table."""
    if transcript_lengths is None:
        transcript_lengths = (transcript_ids != -100).sum(-1)
    targets = stage_a_targets(config, table, transcript_ids, transcript_lengths, audio)
    outputs = audio.embeddings
    if config.stage_a_loss == "mse_cosine":
        loss, parts = mse_cosine_loss(
            outputs, targets.embeddings, targets.word_mask, targets.pad_mask, config.loss_alpha, config.loss_gamma
        )
        if ctc_head is not None:  # a head asked for by `ctc_head` trains beside the 2025 loss
            parts["ctc"] = sampled_ctc_loss(config, ctc_head, table, audio, transcript_ids, transcript_lengths)
            loss = loss + config.ctc_weight * parts["ctc"]
    else:
        loss, parts = l1_cosine_contrastive_ctc_loss(config, table, ctc_head, audio, targets, transcript_ids, transcript_lengths)
    return StageAOutput(loss=loss, parts=parts, embeddings=outputs, lengths=audio.lengths)


def loss_vocabulary(config, target_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Vocabulary rows the contrastive and CTC terms run over: all, or the targets + the blank + a random sample."""
    if config.loss_vocabulary_sample is None:
        return torch.arange(vocab_size, device=target_ids.device)
    sample = torch.randint(vocab_size, (config.loss_vocabulary_sample,), device=target_ids.device)
    blank = torch.tensor([config.mapper_pad_token_id], device=target_ids.device)
    return torch.unique(torch.cat([target_ids.flatten(), blank, sample]))


def l1_cosine_contrastive_ctc_loss(config, table, ctc_head, audio, targets: StageATargets, transcript_ids, transcript_lengths):
    """IWSLT 2026: L1 + (1 − cosine) + w·contrastive over the vocabulary + CTC after block 1."""
    outputs, valid = audio.embeddings, targets.word_mask + targets.pad_mask
    l1 = masked_mean((outputs - targets.embeddings).abs().mean(-1), valid)
    cosine = masked_mean(F.cosine_similarity(outputs, targets.embeddings, dim=-1), targets.word_mask)
    rows = loss_vocabulary(config, targets.ids, table.shape[0])
    position = vocabulary_positions(rows, table.shape[0])
    contrastive = contrastive_loss(outputs, position[targets.ids], valid, table.detach()[rows], config.contrastive_temperature)
    ctc = sampled_ctc_loss(config, ctc_head, table, audio, transcript_ids, transcript_lengths, rows)
    loss = l1 + (1 - cosine) + config.contrastive_weight * contrastive + config.ctc_weight * ctc
    return loss, {"l1": l1, "cosine": cosine, "contrastive": contrastive, "ctc": ctc}


def vocabulary_positions(rows: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """vocabulary id → its index among the kept `rows` (−1 for a row left out)."""
    position = torch.full((vocab_size,), -1, dtype=torch.long, device=rows.device)
    position[rows] = torch.arange(len(rows), device=rows.device)
    return position


def sampled_ctc_loss(config, ctc_head, table, audio, transcript_ids, transcript_lengths, rows=None) -> torch.Tensor:
    """CTC of the head on mapper block 1 against the transcript, over the vocabulary `rows` (all when None)."""
    if rows is None:
        rows = loss_vocabulary(config, transcript_ids.clamp(min=0), table.shape[0])
    position = vocabulary_positions(rows, table.shape[0])
    ctc_logits = ctc_head(audio.first_block_hidden, table, rows)
    blank = int(position[config.mapper_pad_token_id])
    return ctc_loss(ctc_logits, audio.first_block_lengths, position[transcript_ids.clamp(min=0)], transcript_lengths, blank)


class VocabularyCTCHead(nn.Linear):
    """IWSLT 2026's CTC head: a linear layer from mapper block 1 over the whole LLM vocabulary."""

    def forward(self, hidden: torch.Tensor, table: torch.Tensor | None = None, rows: torch.Tensor | None = None):
        weight, bias = (self.weight, self.bias) if rows is None else (self.weight[rows], self.bias[rows])
        return F.linear(hidden.to(weight.dtype), weight, bias)


class EmbeddingCTCHead(nn.Module):
    """A compact CTC head: block-1 frames projected into the LLM's embedding space and scored against the LLM's own
    (frozen) input-embedding rows, plus a bias per token. width × hidden + vocab parameters (0.5M for the default)
    where a vocabulary head has width × vocab (58M): every checkpoint can keep it, and its reading is in the LLM's
    tokens, so the LLM's beam can be scored by it token for token.

    The blank (the mapper's pad token) is scored against a vector of its own instead of its embedding row: that row is
    an untrained token's, near the mean of all rows, so scoring against it ties blank to every word (a head fitted that
    way never chose blank on a single frame)."""

    def __init__(self, width: int, hidden_size: int, vocab_size: int, blank_id: int):
        super().__init__()
        self.projection = nn.Linear(width, hidden_size)
        self.bias = nn.Parameter(torch.zeros(vocab_size))
        self.blank_embedding = nn.Parameter(torch.zeros(hidden_size))
        self.blank_id = blank_id

    def reset_parameters(self):
        self.projection.reset_parameters()
        nn.init.zeros_(self.bias)
        nn.init.zeros_(self.blank_embedding)

    def forward(self, hidden: torch.Tensor, table: torch.Tensor, rows: torch.Tensor | None = None):
        table, bias = table.detach(), self.bias
        ids = torch.arange(bias.shape[0], device=bias.device) if rows is None else rows
        if rows is not None:
            table, bias = table[rows], bias[rows]
        projected = self.projection(hidden.to(self.projection.weight.dtype))
        logits = F.linear(projected, table.to(projected.dtype), bias.to(projected.dtype))
        blank = projected @ self.blank_embedding.to(projected.dtype) + self.bias[self.blank_id].to(projected.dtype)
        return torch.where(ids == self.blank_id, blank[..., None], logits)


def build_ctc_head(config: SpeechLLMConfig) -> nn.Module | None:
    """The CTC head after mapper block 1 that `config.ctc_head_kind` names (None for "none")."""
    kind = config.ctc_head_kind
    if kind == "vocabulary":
        return VocabularyCTCHead(config.mapper_widths[0], config.text_config.vocab_size)
    if kind == "embedding":
        return EmbeddingCTCHead(
            config.mapper_widths[0], config.text_config.hidden_size, config.text_config.vocab_size, config.mapper_pad_token_id
        )
    return None


def initialise_ctc_head(head: nn.Module, init_weights):
    """Fresh weights for a CTC head (built on the meta device, or new after a resize)."""
    if isinstance(head, EmbeddingCTCHead):
        head.reset_parameters()
    else:
        init_weights(head)


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------


class SpeechLLMPreTrainedModel(PreTrainedModel):
    config_class = SpeechLLMConfig
    config: SpeechLLMConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _no_split_modules = ["MapperBlock"]
    _skip_keys_device_placement = ["past_key_values"]

    def _init_weights(self, module):
        super()._init_weights(module)
        init_ctc_head_parameters(module)


def init_ctc_head_parameters(module: nn.Module):
    """The compact CTC head's bias and blank vector (bare Parameters, which transformers' generic init does not know)."""
    if isinstance(module, EmbeddingCTCHead):
        hf_init.zeros_(module.bias)
        hf_init.zeros_(module.blank_embedding)


@dataclass
class SpeechLLMOutput(CausalLMOutputWithPast):
    ce_loss: torch.Tensor | None = None
    mse_loss: torch.Tensor | None = None
    ctc_loss: torch.Tensor | None = None
    audio_embeddings: torch.Tensor | None = None


class SpeechLLMForConditionalGeneration(SpeechLLMPreTrainedModel, GenerationMixin):
    def __init__(self, config: SpeechLLMConfig):
        super().__init__(config)
        self.audio_tower = SpeechEncoder(config)
        self.multi_modal_projector = SpeechMapper(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.ctc_head = build_ctc_head(config)
        if config.lora:
            self._inject_lora(config.lora)
        self.post_init()

    # -- plumbing the LLM exposes ---------------------------------------------------------------------------------
    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value):
        self.language_model.set_output_embeddings(value)

    def get_decoder(self):
        return self.language_model.get_decoder()

    def resize_token_embeddings(self, new_num_tokens: int, *args, **kwargs):
        """Resize the LLM's embeddings and the 2026 CTC head over the same vocabulary (new rows freshly drawn)."""
        embeddings = self.language_model.resize_token_embeddings(new_num_tokens, *args, **kwargs)
        self.config.text_config.vocab_size = embeddings.num_embeddings
        if self.ctc_head is not None and self.ctc_head.bias.shape[0] != embeddings.num_embeddings:
            old = self.ctc_head
            self.ctc_head = build_ctc_head(self.config).to(old.bias.device, old.bias.dtype)
            initialise_ctc_head(self.ctc_head, self._init_weights)
            rows = min(old.bias.shape[0], self.ctc_head.bias.shape[0])
            with torch.no_grad():
                if isinstance(old, EmbeddingCTCHead):
                    self.ctc_head.projection.load_state_dict(old.projection.state_dict())
                    self.ctc_head.blank_embedding.copy_(old.blank_embedding)
                else:
                    self.ctc_head.weight[:rows] = old.weight[:rows]
                self.ctc_head.bias[:rows] = old.bias[:rows]
        return embeddings

    # -- audio ------------------------------------------------------------------------------------------------------
    def get_audio_features(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> SpeechMapperOutput:
        """Encoder → frame averaging → SpeechMapper; `embeddings` padded, `lengths` valid frames per clip."""
        frames, lengths = self.audio_tower(input_features, input_features_mask)
        return self.multi_modal_projector(frames.to(self.multi_modal_projector.output_projection.weight.dtype), lengths)

    def get_placeholder_mask(self, input_ids: torch.Tensor, num_audio_frames: int) -> torch.Tensor:
        mask = input_ids == self.config.audio_token_id
        num_placeholders = int(mask.sum())
        if num_placeholders != num_audio_frames:
            raise ValueError(
                f"the prompt has {num_placeholders} audio placeholder tokens but the audio gives {num_audio_frames} "
                "mapper frames: build inputs with SpeechLLMProcessor, which expands each placeholder to its clip's length"
            )
        return mask

    def merge_audio_embeddings(self, input_ids, inputs_embeds, audio: SpeechMapperOutput) -> torch.Tensor:
        valid = lengths_to_mask(audio.lengths, audio.embeddings.shape[1])
        audio_embeds = audio.embeddings[valid].to(inputs_embeds.dtype)
        mask = self.get_placeholder_mask(input_ids, audio_embeds.shape[0])
        return inputs_embeds.masked_scatter(mask[..., None].expand_as(inputs_embeds), audio_embeds)

    # -- forward ----------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        input_features: torch.Tensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        transcript_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> SpeechLLMOutput:
        """Causal-LM forward with audio. `labels` give the CE on answer tokens (-100 elsewhere); with
        `config.loss_sigma > 0` and `transcript_ids` (-100 padded), the loss is (1−σ)·CE + σ·MSE to the transcript."""
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
        audio = None
        if input_features is not None:
            if input_features_mask is None or input_ids is None:
                raise ValueError("audio needs input_ids (with placeholders) and input_features_mask: use the processor")
            audio = self.get_audio_features(input_features, input_features_mask)
            inputs_embeds = self.merge_audio_embeddings(input_ids, inputs_embeds, audio)
        elif self.training and self.speech_modules_must_run():
            # At the same point as real audio, so every process runs (and gathers) the modules in the same order.
            inputs_embeds = inputs_embeds + self.zero_weighted_speech_pass().to(inputs_embeds.dtype)
        if self.training and labels is not None and self.answer_logits_suffice():
            outputs = self.answer_only_lm_forward(inputs_embeds, attention_mask, position_ids, labels, **kwargs)
        else:
            outputs = self.language_model(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past_key_values,
                labels=labels,
                use_cache=use_cache,
                logits_to_keep=logits_to_keep,
                **kwargs,
            )
        loss, mse, ctc = outputs.loss, None, None
        sigma = self.config.loss_sigma
        if sigma > 0 and audio is not None and transcript_ids is not None and loss is not None:
            mse = self.transcript_mse(audio, transcript_ids)
            loss = (1 - sigma) * outputs.loss + sigma * mse * self.mse_share(labels, kwargs.get("num_items_in_batch"))
        if self.keeps_ctc_trained(audio, transcript_ids, loss):
            ctc = self.transcript_ctc(audio, transcript_ids)
            loss = loss + self.config.joint_ctc_weight * ctc * self.mse_share(labels, kwargs.get("num_items_in_batch"))
        return SpeechLLMOutput(
            loss=loss,
            logits=outputs.logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            ce_loss=outputs.loss,
            mse_loss=mse,
            ctc_loss=ctc,
            audio_embeddings=None if audio is None else audio.embeddings,
        )

    def answer_logits_suffice(self) -> bool:
        """Whether the CE can be computed from the answer positions' logits alone: not for LMs that rescale or cap
        their logits (Gemma's softcapping, Cohere's logit scale), whose own forward must run."""
        text = self.config.text_config
        return not getattr(text, "final_logit_softcapping", None) and getattr(text, "logit_scale", None) in (None, 1.0)

    def answer_only_lm_forward(self, inputs_embeds, attention_mask, position_ids, labels, **kwargs) -> CausalLMOutputWithPast:
        """Training CE with the output layer run only where a label is (the answer tokens, a fraction of a prompt
        with audio): the same loss as the LM's own forward (sum over tokens / `num_items_in_batch`, else their mean),
        without the logits of every prompt position over the whole vocabulary. `logits` holds the answer rows only."""
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        hidden = self.language_model.get_decoder()(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False, **kwargs
        ).last_hidden_state
        targets = labels[:, 1:]
        answer = targets != -100
        logits = self.language_model.get_output_embeddings()(hidden[:, :-1][answer]).float()
        loss = F.cross_entropy(logits, targets[answer], reduction="sum")
        loss = loss / (num_items_in_batch if num_items_in_batch is not None else answer.sum().clamp(min=1))
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    @staticmethod
    def mse_share(labels: torch.Tensor, num_items_in_batch) -> float | torch.Tensor:
        """Weight of this batch's (mean) MSE so that it adds up like the CE when the Trainer divides the CE sum by
        the answer tokens of all devices and accumulation steps: this batch's share of those tokens."""
        if num_items_in_batch is None:
            return 1.0
        local_items = (labels[..., 1:] != -100).sum()
        return local_items.to(torch.float32) / torch.as_tensor(num_items_in_batch, device=labels.device)

    def speech_modules_must_run(self) -> bool:
        # Under DDP/ZeRO-3 every rank must run (and gather) the same modules each step, audio or not.
        return torch.distributed.is_available() and torch.distributed.is_initialized()

    def zero_weighted_speech_pass(self) -> torch.Tensor:
        features, mask = self.audio_tower.silent_inputs(self.multi_modal_projector.output_projection.weight.device)
        audio = self.get_audio_features(features, mask)
        return 0.0 * audio.embeddings.sum()

    def transcript_mse(self, audio: SpeechMapperOutput, transcript_ids: torch.Tensor) -> torch.Tensor:
        """MSE of the mapper outputs to the embedding rows of the transcript, padded (stage-A targets). Clips whose
        transcript row is all -100 (no transcript) are left out."""
        lengths = (transcript_ids != -100).sum(-1)
        targets = stage_a_targets(self.config, self.get_input_embeddings().weight, transcript_ids, lengths, audio)
        has_transcript = (lengths > 0).to(audio.embeddings.dtype)[:, None]
        squared = (audio.embeddings - targets.embeddings.to(audio.embeddings.dtype)).pow(2).mean(-1)
        return masked_mean(squared, (targets.word_mask + targets.pad_mask) * has_transcript)

    def keeps_ctc_trained(self, audio, transcript_ids, loss) -> bool:
        """Whether this batch adds the CTC term of stages B/C (`joint_ctc_weight`): audio with transcripts, a head."""
        return (self.config.joint_ctc_weight > 0 and self.ctc_head is not None and audio is not None
                and transcript_ids is not None and loss is not None)

    def transcript_ctc(self, audio: SpeechMapperOutput, transcript_ids: torch.Tensor) -> torch.Tensor:
        """The CTC head's loss on the clips that have a transcript (rows of -100 have none)."""
        lengths = (transcript_ids != -100).sum(-1)
        keep = lengths > 0
        if not keep.any():
            return audio.embeddings.sum() * 0.0
        kept = SpeechMapperOutput(audio.embeddings[keep], audio.lengths[keep], audio.first_block_hidden[keep],
                                  audio.first_block_lengths[keep])
        table = self.get_input_embeddings().weight
        return sampled_ctc_loss(self.config, self.ctc_head, table, kept, transcript_ids[keep], lengths[keep])

    # -- stage A ----------------------------------------------------------------------------------------------------
    def stage_a_loss(
        self,
        input_features: torch.Tensor,
        input_features_mask: torch.Tensor,
        transcript_ids: torch.Tensor,
        transcript_lengths: torch.Tensor | None = None,
    ) -> "StageAOutput":
        """Pretraining loss of the SpeechMapper: uses the LLM's input-embedding table only, never its layers.

        `transcript_ids` are right-padded with -100 (or give `transcript_lengths`)."""
        audio = self.get_audio_features(input_features, input_features_mask)
        table = self.get_input_embeddings().weight
        return stage_a_loss(self.config, table, self.ctc_head, audio, transcript_ids, transcript_lengths)

    # -- generation -------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def ctc_log_probs(self, input_features: torch.Tensor, input_features_mask: torch.Tensor) -> list[torch.Tensor]:
        """Each clip's CTC log-probabilities over the LLM vocabulary, (frames, vocab), from mapper block 1."""
        if self.ctc_head is None:
            raise ValueError("this checkpoint has no CTC head (config.ctc_head): decode with ctc_weight=0")
        audio = self.get_audio_features(input_features, input_features_mask)
        logits = self.ctc_head(audio.first_block_hidden, self.get_input_embeddings().weight).float().log_softmax(-1)
        return [row[:length] for row, length in zip(logits, audio.first_block_lengths.tolist())]

    def generate(self, *args, ctc_weight: float = 0.0, ctc_candidates: int = 8, **kwargs):
        """`GenerationMixin.generate`, plus joint CTC/LLM scoring (ctc_decoding.py) when `ctc_weight` > 0: each step
        the LLM's `ctc_candidates` best tokens are rescored with the CTC prefix score of the audio, under greedy or
        beam search (`num_beams`). `ctc_weight=0` is plain `generate`, token for token. Beam search runs the prompt
        (audio included) once per clip, not once per beam."""
        if args:
            kwargs["input_ids"] = args[0]
            args = args[1:]
        input_ids = kwargs.get("input_ids")
        generation_config = kwargs.get("generation_config") or self.generation_config
        num_beams = kwargs.get("num_beams") or generation_config.num_beams or 1
        if ctc_weight:
            kwargs["logits_processor"] = LogitsProcessorList([*(kwargs.get("logits_processor") or []),
                                                              self.ctc_scorer(kwargs, generation_config, num_beams, ctc_weight, ctc_candidates)])
        if num_beams > 1 and kwargs.get("input_features") is not None and kwargs.get("past_key_values") is None \
                and kwargs.get("use_cache", True) and input_ids is not None:
            kwargs = self.prefilled_for_beams(kwargs, num_beams)
        return super().generate(*args, **kwargs)

    def ctc_scorer(self, kwargs, generation_config, num_beams, ctc_weight, ctc_candidates) -> CTCPrefixLogitsProcessor:
        input_ids = kwargs.get("input_ids")
        if input_ids is None or kwargs.get("input_features") is None:
            raise ValueError("ctc_weight > 0 needs input_ids and input_features (the audio the CTC head reads)")
        if kwargs["input_features"].shape[0] != input_ids.shape[0]:
            raise ValueError("ctc_weight > 0 takes one clip per prompt (not long_audio='one_prompt' windows)")
        eos = kwargs.get("eos_token_id", generation_config.eos_token_id)
        return CTCPrefixLogitsProcessor(
            self.ctc_log_probs(kwargs["input_features"], kwargs["input_features_mask"]),
            blank_id=self.config.mapper_pad_token_id,
            eos_token_ids=[eos] if isinstance(eos, int) else list(eos or []),
            prompt_length=input_ids.shape[1],
            num_beams=num_beams,
            weight=ctc_weight,
            candidates=ctc_candidates,
        )

    @torch.no_grad()
    def prefilled_for_beams(self, kwargs: dict, num_beams: int) -> dict:
        """The prompt but its last token run once per clip (the audio scattered in), its KV cache copied to each beam:
        `generate` would otherwise expand the prompt to every beam first and run the encoder, mapper and LLM prefill
        `num_beams` times. Positions follow the attention mask, as `generate` computes them for left-padded rows."""
        kwargs = dict(kwargs)
        input_ids = kwargs["input_ids"]
        attention_mask = kwargs.get("attention_mask")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        prefix_mask = attention_mask[:, :-1]
        position_ids = (prefix_mask.long().cumsum(-1) - 1).clamp(min=0)
        outputs = self(
            input_ids=input_ids[:, :-1],
            input_features=kwargs.pop("input_features"),
            input_features_mask=kwargs.pop("input_features_mask"),
            attention_mask=prefix_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = outputs.past_key_values
        cache.batch_repeat_interleave(num_beams)
        kwargs["past_key_values"] = cache
        kwargs["attention_mask"] = attention_mask
        return kwargs

    def prepare_inputs_for_generation(self, *args, is_first_iteration=False, **kwargs):
        input_features = kwargs.pop("input_features", None)
        input_features_mask = kwargs.pop("input_features_mask", None)
        model_inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if is_first_iteration or not kwargs.get("use_cache", True):
            # The audio is consumed by the prefill; later steps read it from the KV cache.
            model_inputs["input_features"] = input_features
            model_inputs["input_features_mask"] = input_features_mask
        return model_inputs

    # -- LoRA -------------------------------------------------------------------------------------------------------
    def _inject_lora(self, lora_settings: dict):
        from peft import LoraConfig, inject_adapter_in_model

        # Injected into the language model only: the encoder and the mapper are never matched.
        inject_adapter_in_model(LoraConfig(**lora_settings), self.language_model)

    def enable_lora(self, **lora_settings):
        """Attach LoRA adapters (default r 8, α 16, dropout 0, attention + MLP) to the language model."""
        if self.config.lora:
            raise ValueError("LoRA is already attached; call merge_lora() first to attach a new one")
        settings = {**LORA_DEFAULTS, **lora_settings}
        self.config.lora = settings
        self._inject_lora(settings)
        self.language_model.requires_grad_(False)
        for name, param in self.language_model.named_parameters():
            param.requires_grad = "lora_" in name
        return self

    def merge_lora(self):
        """Fold the LoRA weights into the language model's linear layers and drop the adapters."""
        from peft.tuners.lora import LoraLayer

        for name, module in list(self.language_model.named_modules()):
            if isinstance(module, LoraLayer):
                module.merge()
                parent_name, _, child = name.rpartition(".")
                setattr(self.language_model.get_submodule(parent_name), child, module.get_base_layer())
        self.config.lora = None
        return self

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        model.audio_tower.requires_grad_(False)  # loading makes fresh Parameters, which require grad again
        return model

    # -- building from pretrained parts -------------------------------------------------------------------------
    @classmethod
    def from_pretrained_parts(
        cls, encoder_name_or_path: str, text_name_or_path: str, dtype: torch.dtype | None = None, **config_kwargs
    ):
        """Compose a model from a pretrained speech encoder and a pretrained causal LM (local paths or Hub ids).

        Only the encoder's own tensors are read from its checkpoint (e.g. `speech_encoder.*` of a full
        SeamlessM4T-v2). The mapper is freshly initialised; `config_kwargs` set SpeechLLMConfig fields.
        """
        config_kwargs.setdefault("base_models", {"encoder": encoder_name_or_path, "llm": text_name_or_path})
        encoder_config = AutoConfig.from_pretrained(encoder_name_or_path)
        language_model = AutoModelForCausalLM.from_pretrained(text_name_or_path, dtype=dtype)
        config = SpeechLLMConfig(encoder_config=encoder_config, text_config=language_model.config, **config_kwargs)
        with torch.device("meta"):  # no random LLM/encoder allocation: both are replaced right below
            model = cls(config)
        model.language_model = language_model
        encoder = model.audio_tower.encoder
        state = read_checkpoint_tensors(encoder_name_or_path, encoder.state_dict().keys())
        encoder.load_state_dict(state, assign=True)
        model.multi_modal_projector.to_empty(device="cpu")
        model.multi_modal_projector.apply(model._init_weights)
        if model.ctc_head is not None:
            model.ctc_head.to_empty(device="cpu")
            initialise_ctc_head(model.ctc_head, model._init_weights)
        if dtype is not None:
            model.audio_tower.to(dtype)
        return model

    # -- saving -----------------------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save weights (safetensors), config with `auto_map` and `custom_pipelines`, and the remote-code files."""
        mark_for_remote_code(self.config)
        super().save_pretrained(save_directory, *args, **kwargs)
        copy_remote_code(save_directory, self.name_or_path)


def mark_for_remote_code(config: SpeechLLMConfig):
    """The config entries that let Auto classes and `pipeline()` find the code saved beside the weights."""
    config.auto_map = {
        "AutoConfig": "configuration_speechllm.SpeechLLMConfig",
        "AutoModel": "modeling_speechllm.SpeechLLMForConditionalGeneration",
        "AutoModelForCausalLM": "modeling_speechllm.SpeechLLMForConditionalGeneration",
    }
    config.custom_pipelines = {
        "speech-instruct": {
            "impl": "pipeline_speechllm.SpeechInstructPipeline",
            "pt": ["AutoModel"],
            "tf": [],
            "type": "multimodal",
        }
    }


REMOTE_CODE_FILES = (
    "configuration_speechllm.py",
    "modeling_speechllm.py",
    "processing_speechllm.py",
    "pipeline_speechllm.py",
    "long_audio.py",
    "ctc_decoding.py",
)


def copy_remote_code(save_directory: str, loaded_from: str | None = None):
    """A saved directory carries its own code, so it loads with trust_remote_code=True anywhere.

    Each file is taken from beside this module, else from where the model was loaded: transformers' module cache holds
    only the files the model class imports (not the processor's or the pipeline's), so a model loaded through remote
    code finds the rest in its checkpoint directory (or its Hub repository)."""
    for name in REMOTE_CODE_FILES:
        target = os.path.join(save_directory, name)
        source = remote_code_file(name, loaded_from)
        if os.path.abspath(source) != os.path.abspath(target):
            shutil.copyfile(source, target)


def remote_code_file(name: str, loaded_from: str | None) -> str:
    beside = os.path.join(os.path.dirname(os.path.abspath(__file__)), name)
    if os.path.exists(beside):
        return beside
    if loaded_from and os.path.isdir(loaded_from) and os.path.exists(os.path.join(loaded_from, name)):
        return os.path.join(loaded_from, name)
    if loaded_from and not os.path.isdir(loaded_from):
        from huggingface_hub import hf_hub_download

        return hf_hub_download(loaded_from, name)
    raise FileNotFoundError(
        f"{name} is neither beside {__file__} nor in {loaded_from!r}, where the model was loaded from: the saved "
        "directory would not load with trust_remote_code=True; save from a checkout of speechllm instead"
    )


def safetensors_files(name_or_path: str) -> list[str]:
    """The safetensors files of a local checkpoint directory, or of a Hub repo (downloaded on demand)."""
    if not os.path.isdir(name_or_path):
        from huggingface_hub import snapshot_download

        name_or_path = snapshot_download(name_or_path, allow_patterns=["*.safetensors", "*.json"])
    index = os.path.join(name_or_path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as handle:
            names = sorted(set(json.load(handle)["weight_map"].values()))
    else:
        names = [name for name in sorted(os.listdir(name_or_path)) if name.endswith(".safetensors")]
    if not names:
        raise ValueError(f"{name_or_path} holds no safetensors weights: re-save the checkpoint with safe_serialization")
    return [os.path.join(name_or_path, name) for name in names]


def locate_checkpoint_tensors(name_or_path: str, wanted_keys) -> dict[str, tuple[str, str]]:
    """{wanted key: (safetensors file, key in that file)}, the wanted keys matched modulo one common prefix."""
    wanted_keys = list(wanted_keys)
    key_to_file = {}
    for path in safetensors_files(name_or_path):
        with safe_open(path, framework="pt") as handle:
            key_to_file.update({key: path for key in handle.keys()})
    prefix = find_key_prefix(key_to_file, wanted_keys, name_or_path)
    return {key: (key_to_file[prefix + key], prefix + key) for key in wanted_keys}


def read_checkpoint_tensors(name_or_path: str, wanted_keys) -> dict[str, torch.Tensor]:
    """Read only the tensors named `wanted_keys` (modulo one common prefix, such as `speech_encoder.`) from a
    checkpoint's safetensors files, without loading anything else into memory."""
    locations = locate_checkpoint_tensors(name_or_path, wanted_keys)
    tensors = {}
    for path in sorted({path for path, _ in locations.values()}):
        with safe_open(path, framework="pt") as handle:
            for key, (tensor_path, stored_key) in locations.items():
                if tensor_path == path:
                    tensors[key] = handle.get_tensor(stored_key)
    return tensors


def find_key_prefix(key_to_file: dict, wanted_keys: list[str], name_or_path: str) -> str:
    anchor = wanted_keys[0]
    for key in key_to_file:
        if key == anchor or key.endswith("." + anchor):
            prefix = key[: len(key) - len(anchor)]
            missing = [k for k in wanted_keys if prefix + k not in key_to_file]
            if not missing:
                return prefix
    raise ValueError(f"{name_or_path} does not contain the tensors {wanted_keys[:3]}... under any common prefix")


SpeechLLMForConditionalGeneration.register_for_auto_class("AutoModel")

__all__ = [
    "SpeechLLMPreTrainedModel",
    "SpeechLLMForConditionalGeneration",
    "SpeechMapper",
    "SpeechEncoder",
    "mapper_output_lengths",
    "read_checkpoint_tensors",
]
