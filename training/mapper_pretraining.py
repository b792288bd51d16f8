"""Stage A: the SpeechMapper trained WITHOUT the LLM, on cached encoder features and the LLM's embedding table.

Only three things are read from the base checkpoint: the encoder (once, to fill the feature cache), the mapper's
initial weights, and the one embedding tensor of the LLM. The LLM's transformer layers are never loaded.
"""

import hashlib
import json
import logging
import os

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PreTrainedModel

from configuration_speechllm import SpeechLLMConfig
from modeling_speechllm import (
    SpeechEncoder,
    locate_checkpoint_tensors,
    SpeechMapper,
    build_ctc_head,
    init_ctc_head_parameters,
    mark_for_remote_code,
    read_checkpoint_tensors,
    safetensors_files,
    sampled_ctc_loss,
    stage_a_loss,
    StageAOutput,
)
from processing_speechllm import load_audio
from synthesis.jsonl import write_atomically
from training.checkpoints import tensor_bytes_digest
from training.data import pad_token_rows
from training.zero import whole_tensors_while_building

logger = logging.getLogger("speechllm.stage_a")


def embedding_key(config: SpeechLLMConfig) -> str:
    """Name of the LLM's input-embedding tensor, asked of the LLM class itself (built on the meta device)."""
    with torch.device("meta"):
        llm = AutoModelForCausalLM.from_config(config.text_config)
    table = llm.get_input_embeddings().weight
    name = next(name for name, param in llm.named_parameters() if param is table)
    return f"language_model.{name}"


class SpeechMapperForPretraining(PreTrainedModel):
    """SpeechMapper + (2026) CTC head, trained against a frozen copy of the LLM's input-embedding table."""

    config_class = SpeechLLMConfig
    base_model_prefix = "speechmapper"
    accepts_loss_kwargs = False  # the stage-A loss is a per-batch mean; the Trainer averages it as such
    main_input_name = "encoder_frames"

    def __init__(self, config: SpeechLLMConfig):
        super().__init__(config)
        self.multi_modal_projector = SpeechMapper(config)
        self.ctc_head = build_ctc_head(config)
        table = torch.zeros(config.text_config.vocab_size, config.text_config.hidden_size)
        self.register_buffer("embedding_table", table, persistent=False)  # frozen, never saved
        self.ctc_only = False  # fit_ctc_head_only
        self.post_init()

    @classmethod
    def from_speechllm_checkpoint(cls, checkpoint: str, **config_overrides):
        """Built with whole tensors even under ZeRO-3 (DeepSpeed partitions the mapper later; the meta LLM that
        names the embedding tensor must never meet zero.Init, and no LLM layer is materialised or partitioned)."""
        config = SpeechLLMConfig.from_pretrained(checkpoint, **config_overrides)
        with whole_tensors_while_building():
            model = cls(config)
            table_key = embedding_key(config)
        speech_keys = list(model.state_dict().keys())
        tensors = read_checkpoint_tensors(checkpoint, [table_key])
        model.embedding_table.copy_(tensors[table_key])
        initial = read_available_tensors(checkpoint, speech_keys)
        model.load_state_dict(initial, strict=False)  # the base checkpoint's mapper (a 2026 CTC head may be new)
        return model

    def _init_weights(self, module):
        super()._init_weights(module)
        init_ctc_head_parameters(module)

    def fit_ctc_head_only(self):
        """Train the CTC head alone on this checkpoint's mapper, which stays frozen and in eval mode (no dropout, no
        SpecAugment): the head learns to read the block-1 frames that inference will give it."""
        if self.ctc_head is None:
            raise ValueError("the checkpoint's config has no CTC head to fit: pass --ctc_head embedding")
        self.ctc_only = True
        self.multi_modal_projector.requires_grad_(False)
        return self

    def train(self, mode: bool = True):
        super().train(mode)
        if self.ctc_only:
            self.multi_modal_projector.eval()
        return self

    def forward(self, encoder_frames, encoder_lengths, transcript_ids, **kwargs):
        audio = self.multi_modal_projector(encoder_frames, encoder_lengths)
        if self.ctc_only:
            lengths = (transcript_ids != -100).sum(-1)
            ctc = sampled_ctc_loss(self.config, self.ctc_head, self.embedding_table, audio, transcript_ids, lengths)
            return StageAOutput(loss=ctc, parts={"ctc": ctc}, embeddings=audio.embeddings, lengths=audio.lengths)
        return stage_a_loss(self.config, self.embedding_table, self.ctc_head, audio, transcript_ids)

    def save_pretrained(self, save_directory, *args, **kwargs):
        mark_for_remote_code(self.config)
        super().save_pretrained(save_directory, *args, **kwargs)


def read_available_tensors(checkpoint: str, keys: list[str]) -> dict:
    """The subset of `keys` that the checkpoint holds (a new CTC head is absent from a base checkpoint)."""
    from safetensors import safe_open

    present = set()
    for path in safetensors_files(checkpoint):
        with safe_open(path, framework="pt") as handle:
            present.update(handle.keys())
    return read_checkpoint_tensors(checkpoint, [k for k in keys if k in present]) if present & set(keys) else {}


# ---------------------------------------------------------------------------------------------------------------
# Feature cache
# ---------------------------------------------------------------------------------------------------------------


def encoder_fingerprint(checkpoint: str, config: SpeechLLMConfig) -> str:
    """Cache key: the encoder's weights (by content, so a rebuilt but identical checkpoint still hits), its config
    and class, the layer and the frame averaging."""
    with torch.device("meta"):
        encoder = SpeechEncoder(config).encoder
    encoder_keys = encoder.state_dict().keys()
    description = {
        "encoder": config.encoder_config.to_dict(),
        "encoder_class": type(encoder).__qualname__,  # how the encoder is run (e.g. Whisper on valid frames only)
        "weights": tensor_bytes_digest(locate_checkpoint_tensors(checkpoint, encoder_keys)),
        "layer": config.encoder_layer,
        "frame_average": config.frame_average,
    }
    return hashlib.sha1(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:16]


def audio_fingerprint(source) -> str:
    if isinstance(source, (bytes, bytearray)):
        return hashlib.sha1(source).hexdigest()
    stat = os.stat(source)
    return hashlib.sha1(f"{os.path.abspath(source)}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()


def load_encoder(checkpoint: str, config: SpeechLLMConfig) -> SpeechEncoder:
    encoder = SpeechEncoder(config)
    encoder.encoder.load_state_dict(read_checkpoint_tensors(checkpoint, encoder.encoder.state_dict().keys()))
    return encoder.eval()


def fill_feature_cache(sources: list, checkpoint: str, config, processor, cache_dir: str, batch_size: int = 8) -> list[str]:
    """Encoder frames (layer `encoder_layer`, averaged) of every clip as .npy files; computes only what is missing.

    Each file is written atomically (`synthesis.jsonl.write_atomically`): a killed run leaves no half-written entry, and
    two processes filling one cache never rename away each other's file."""
    with whole_tensors_while_building():  # the frozen encoder runs whole on every process, never partitioned
        directory = os.path.join(cache_dir, encoder_fingerprint(checkpoint, config))
    os.makedirs(directory, exist_ok=True)
    paths = [os.path.join(directory, audio_fingerprint(source) + ".npy") for source in sources]
    missing = [i for i, path in enumerate(paths) if not os.path.exists(path)]
    logger.warning(
        "feature cache %s: %d of %d clips already cached, computing %d", directory, len(paths) - len(missing), len(paths), len(missing)
    )
    if missing:
        with whole_tensors_while_building():
            encoder = load_encoder(checkpoint, config)
        with tqdm(total=len(missing), desc="caching encoder features", unit="clip") as progress:
            for batch in length_sorted_batches(missing, sources, processor.sampling_rate, batch_size):
                features = processor.extract_features([clip for _, clip in batch])
                with torch.no_grad():
                    frames, lengths = encoder(features["input_features"], features["input_features_mask"])
                for (i, _), row_frames, length in zip(batch, frames, lengths):
                    row = row_frames[: int(length)].float().numpy()
                    write_atomically(paths[i], lambda temporary, row=row: np.save(temporary, row))
                progress.update(len(batch))
    return paths


def length_sorted_batches(indices: list[int], sources: list, sampling_rate: int, batch_size: int, window: int = 32):
    """(index, clip) batches of similar length, decoded `window` batches at a time.

    A batch is padded to its longest clip: in source order that padding was a third of the encoder's work on fakACL,
    and Whisper attends over it (it has no attention mask), so a short clip batched with long ones is also encoded
    unlike the same clip alone, as inference sees it."""
    for start in range(0, len(indices), batch_size * window):
        part = [(i, load_audio(sources[i], None, sampling_rate)) for i in indices[start : start + batch_size * window]]
        part.sort(key=lambda item: len(item[1]))
        for first in range(0, len(part), batch_size):
            yield part[first : first + batch_size]


class StageACollator:
    """Cached frames → padded `encoder_frames` + `encoder_lengths`, transcripts → -100-padded `transcript_ids`."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, examples: list[dict]) -> dict:
        frames = [torch.from_numpy(np.load(e["feature_path"])) for e in examples]
        lengths = torch.tensor([len(f) for f in frames])
        padded = nn.utils.rnn.pad_sequence(frames, batch_first=True)
        ids = [self.tokenizer(e["transcript"], add_special_tokens=False)["input_ids"] for e in examples]
        return {"encoder_frames": padded, "encoder_lengths": lengths, "transcript_ids": pad_token_rows(ids)}
