"""Processor of speechllm: audio loading and checks, the encoder's feature extractor, the LLM's tokenizer, the prompt.

Each audio placeholder is expanded to exactly as many tokens as the model produces mapper frames for its clip, with
the one length formula the model uses (`speech_output_lengths`).
"""

import io
import logging
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from transformers import BatchFeature, ProcessorMixin

try:
    from .configuration_speechllm import DEFAULT_PROMPT_TEMPLATE, DEFAULT_TEXT_PROMPT_TEMPLATE, speech_output_lengths
except ImportError:
    from configuration_speechllm import DEFAULT_PROMPT_TEMPLATE, DEFAULT_TEXT_PROMPT_TEMPLATE, speech_output_lengths

logger = logging.getLogger(__name__)

# Instructions written in the target language, as the papers prompt (IWSLT 2025/2026).
TRANSCRIBE_INSTRUCTION = "Transcribe the audio into English text. Output only the transcription and nothing else."
TRANSLATE_INSTRUCTIONS = {
    "en": "Translate the audio into English. Output only the translation and nothing else.",
    "de": "Übersetze das Audio ins Deutsche. Gib nur die Übersetzung aus und sonst nichts.",
    "it": "Traduci l'audio in italiano. Fornisci solo la traduzione e nient'altro.",
    "zh": "将音频翻译成中文。只输出译文，不要输出其他内容。",
    "fr": "Traduis l'audio en français. Donne uniquement la traduction et rien d'autre.",
    "es": "Traduce el audio al español. Da solo la traducción y nada más.",
}


def translation_instruction(target_language: str) -> str:
    if target_language not in TRANSLATE_INSTRUCTIONS:
        raise ValueError(
            f"unknown target language {target_language!r}: use one of {sorted(TRANSLATE_INSTRUCTIONS)} "
            "or pass your own instruction"
        )
    return TRANSLATE_INSTRUCTIONS[target_language]


# ---------------------------------------------------------------------------------------------------------------
# Audio: read, check, make mono, resample
# ---------------------------------------------------------------------------------------------------------------


class AudioError(ValueError):
    """Unusable audio: the message names the input and the fix; `reason` is its kind in a few words, by which bad
    training rows are counted."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def read_audio(source, name: str) -> tuple[np.ndarray, int]:
    """Decode a path or raw bytes with soundfile; returns (samples[, channels], sampling_rate)."""
    import soundfile

    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    elif not os.path.exists(source):
        raise AudioError(f"{name}: file {source!r} does not exist", "audio file does not exist")
    try:
        samples, sampling_rate = soundfile.read(source, dtype="float32", always_2d=False)
    except Exception as error:  # soundfile raises its own LibsndfileError, RuntimeError or TypeError
        raise AudioError(
            f"{name}: cannot decode audio ({error}); pass a WAV/FLAC/OGG file, bytes or an array", "not an audio file"
        ) from error
    return samples, sampling_rate


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    from scipy.signal import resample_poly

    divisor = math.gcd(source_rate, target_rate)
    return resample_poly(samples, target_rate // divisor, source_rate // divisor).astype(np.float32)


def to_mono(samples: np.ndarray, name: str) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioError(f"{name}: audio must be 1-D (samples) or 2-D (samples, channels); got shape {samples.shape}", "bad array shape")
    channel_axis = 1 if samples.shape[1] <= samples.shape[0] else 0
    logger.debug("%s: averaging %d channels to mono", name, samples.shape[channel_axis])
    return samples.mean(axis=channel_axis)


def load_audio(audio, sampling_rate: int | None, target_rate: int, name: str = "audio") -> np.ndarray:
    """Any supported audio input → mono float32 samples at `target_rate`, or a ValueError naming the problem.

    Accepts a file path, raw file bytes, a numpy array or tensor (with `sampling_rate`), or a dict with `array`
    (or `raw`) and `sampling_rate` as the `datasets` Audio feature yields.
    """
    if isinstance(audio, dict):
        sampling_rate = audio.get("sampling_rate", sampling_rate)
        audio = audio["array"] if "array" in audio else audio.get("raw", audio.get("path"))
    if isinstance(audio, (str, os.PathLike, bytes, bytearray)):
        audio, sampling_rate = read_audio(audio if not isinstance(audio, os.PathLike) else str(audio), name)
    elif isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().float().numpy()
    elif not isinstance(audio, np.ndarray):
        raise AudioError(f"{name}: unsupported audio type {type(audio).__name__}; pass a path, bytes or an array", "unsupported audio type")
    if sampling_rate is None:
        raise AudioError(f"{name}: an array needs its sampling_rate (e.g. pipe(array, sampling_rate=16000))", "no sampling rate")
    samples = to_mono(np.asarray(audio, dtype=np.float32), name)
    if samples.size == 0:
        raise AudioError(f"{name} has 0 samples: pass a non-empty recording", "empty audio")
    if not np.isfinite(samples).all():
        raise AudioError(f"{name} contains NaN or infinite samples: clean or re-decode the recording", "NaN or infinite samples")
    if sampling_rate != target_rate:
        logger.debug("%s: resampling from %d Hz to %d Hz", name, sampling_rate, target_rate)
        samples = resample(samples, int(sampling_rate), target_rate)
    return samples


# ---------------------------------------------------------------------------------------------------------------
# Special tokens
# ---------------------------------------------------------------------------------------------------------------

RESERVED_TOKEN_PATTERN = "<|reserved_special_token_{}|>"  # Llama 3.x ships 248 unused ones
NEW_AUDIO_TOKEN, NEW_PAD_TOKEN = "<|audio|>", "<|speech_pad|>"


def reserve_special_tokens(tokenizer) -> tuple[str, str]:
    """(audio placeholder, stage-A pad) tokens: two unused reserved tokens of the LLM where it has them (no new
    embedding rows), else two new special tokens added to `tokenizer` (the LLM's embeddings must then be resized)."""
    vocab = tokenizer.get_vocab()
    reserved = [RESERVED_TOKEN_PATTERN.format(i) for i in range(2)]
    if all(token in vocab for token in reserved):
        return reserved[0], reserved[1]
    tokenizer.add_special_tokens({"additional_special_tokens": [NEW_AUDIO_TOKEN, NEW_PAD_TOKEN]})
    return NEW_AUDIO_TOKEN, NEW_PAD_TOKEN


# ---------------------------------------------------------------------------------------------------------------
# Processor
# ---------------------------------------------------------------------------------------------------------------


class SpeechLLMProcessor(ProcessorMixin):
    r"""Feature extractor (SeamlessM4T or Whisper) + the LLM's tokenizer + the papers' prompt.

    feature_stride / frame_average / mapper_strides: the model's downsampling, to count mapper frames per clip.
    max_audio_seconds: longer clips are refused (never cut); the Whisper encoder caps it at its 30 s window.
    """

    def __init__(
        self,
        feature_extractor,
        tokenizer,
        chat_template=None,
        audio_token: str = "<|audio|>",
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        text_prompt_template: str = DEFAULT_TEXT_PROMPT_TEMPLATE,
        feature_stride: int = 1,
        frame_average: int = 2,
        mapper_strides=(2, 2),
        max_audio_seconds: float = 60.0,
    ):
        if chat_template is None:
            chat_template = getattr(tokenizer, "chat_template", None)
        self.audio_token = audio_token
        self.prompt_template = prompt_template
        self.text_prompt_template = text_prompt_template
        self.feature_stride = feature_stride
        self.frame_average = frame_average
        self.mapper_strides = list(mapper_strides)
        self.max_audio_seconds = max_audio_seconds
        super().__init__(feature_extractor, tokenizer, chat_template=chat_template)
        if audio_token not in tokenizer.get_vocab():
            raise ValueError(f"the tokenizer has no token {audio_token!r}: add it as a special token first")
        self.audio_token_id = tokenizer.convert_tokens_to_ids(audio_token)

    @classmethod
    def for_model_config(cls, feature_extractor, tokenizer, config) -> "SpeechLLMProcessor":
        """The processor that matches a SpeechLLMConfig: same placeholder, prompt and downsampling."""
        return cls(
            feature_extractor,
            tokenizer,
            audio_token=config.audio_token,
            prompt_template=config.prompt_template,
            text_prompt_template=config.text_prompt_template,
            feature_stride=config.encoder_feature_stride,
            frame_average=config.frame_average,
            mapper_strides=config.mapper_strides,
            max_audio_seconds=config.max_audio_seconds,
        )

    @property
    def sampling_rate(self) -> int:
        return self.feature_extractor.sampling_rate

    @property
    def max_samples(self) -> int:
        limit = int(self.max_audio_seconds * self.sampling_rate)
        window = getattr(self.feature_extractor, "n_samples", None)  # Whisper's fixed 30 s window
        return min(limit, window) if window else limit

    def limit_reason(self) -> str:
        window = getattr(self.feature_extractor, "n_samples", None)
        if window and window <= self.max_audio_seconds * self.sampling_rate:
            return f"the encoder's {window / self.sampling_rate:.0f} s window"
        return "max_audio_seconds, which you can raise: processor.max_audio_seconds = ..."

    def num_audio_tokens(self, feature_lengths):
        return speech_output_lengths(feature_lengths, self.feature_stride, self.frame_average, self.mapper_strides)

    # -- audio ------------------------------------------------------------------------------------------------------
    def prepare_audio(self, audios: list, sampling_rate: int | None = None, windowed: bool = False) -> list[np.ndarray]:
        clips = [load_audio(a, sampling_rate, self.sampling_rate, name=f"audio {i}") for i, a in enumerate(audios)]
        if not windowed:
            self.check_lengths(clips)
        return clips

    LONG_AUDIO_ADVICE = (
        "the pipeline runs it segment by segment (long_audio='segments', the default for transcripts and translations) "
        "or in one prompt (long_audio='one_prompt', for questions about all of it); the processor takes it with "
        "long_audio='one_prompt'; for training, split it first"
    )

    def check_lengths(self, clips: list[np.ndarray], advice: str = LONG_AUDIO_ADVICE):
        """An AudioError for the first clip longer than the model takes in one piece; `advice` says what to do (a
        server gives its own)."""
        for i, clip in enumerate(clips):
            if len(clip) > self.max_samples:
                raise AudioError(
                    f"audio {i} lasts {len(clip) / self.sampling_rate:.1f} s, longer than the maximum "
                    f"{self.max_samples / self.sampling_rate:.1f} s the model takes in one piece ({self.limit_reason()}): "
                    + advice,
                    "audio too long",
                )

    def windows(self, clip: np.ndarray) -> list[np.ndarray]:
        """A clip as equal consecutive windows the encoder takes (one window when it fits): its mapper frames, joined
        in order, stand for the whole clip in one prompt."""
        count = -(-len(clip) // self.max_samples)
        size = -(-len(clip) // count)
        return [clip[start : start + size] for start in range(0, len(clip), size)]

    def extract_windowed_features(self, clips: list[np.ndarray]) -> dict:
        """Features of every window of every clip (in order); `num_audio_tokens` per clip (its windows' sum)."""
        windows = [self.windows(clip) for clip in clips]
        data = self.extract_features([window for clip_windows in windows for window in clip_windows])
        per_window = iter(data["num_audio_tokens"].tolist())
        data["num_audio_tokens"] = torch.tensor([sum(next(per_window) for _ in clip_windows) for clip_windows in windows])
        return data

    def extract_features(self, clips: list[np.ndarray]) -> dict:
        """Each clip's features extracted alone, then padded together: a clip's features (and so its transcript) do
        not depend on what it is batched with. Whisper's extractor, given a padded batch, computes a clip's last
        frames over the padding's zeros where alone it reflects the clip, and its encoder then reads other values."""
        alone = [self.extract_clip_features(clip) for clip in clips]
        frames_last = self.frames_are_last
        longest = max(features.shape[-1 if frames_last else 1] for features, _ in alone)
        padded, masks = [], []
        for features, mask in alone:
            missing = longest - mask.shape[-1]
            padded.append(F.pad(features, (0, missing) if frames_last else (0, 0, 0, missing)))
            masks.append(F.pad(mask, (0, missing)))
        mask = torch.cat(masks)
        num_tokens = self.num_audio_tokens(mask.sum(-1))
        for i, count in enumerate(num_tokens.tolist()):
            if count < 1:
                raise AudioError(
                    f"audio {i} is too short ({len(clips[i]) / self.sampling_rate:.3f} s) to give one speech token: "
                    "pass at least 0.2 s of audio",
                    "audio too short",
                )
        return {"input_features": torch.cat(padded), "input_features_mask": mask, "num_audio_tokens": num_tokens}

    def extract_clip_features(self, clip: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.feature_extractor(
            [clip], sampling_rate=self.sampling_rate, return_attention_mask=True, padding="longest", return_tensors="pt"
        )
        return features["input_features"], self.valid_frames_mask(features, [clip])

    @property
    def frames_are_last(self) -> bool:
        """Whisper's extractor gives (batch, mel bins, frames); Seamless/W2V-BERT's (batch, frames, channels)."""
        return getattr(self.feature_extractor, "hop_length", None) is not None

    def valid_frames_mask(self, features, clips: list[np.ndarray]) -> torch.Tensor:
        """The extractor's frame mask, made independent of the batch: Whisper's sample-rate mask counts a partial
        last frame that a clip extracted alone does not have (n // hop_length frames)."""
        mask = features["attention_mask"]
        hop = getattr(self.feature_extractor, "hop_length", None)
        if hop is None:
            return mask
        frames = features["input_features"].shape[-1]  # Whisper layout: (batch, mel bins, frames)
        lengths = torch.tensor([min(len(clip) // hop, frames) for clip in clips])
        return (torch.arange(frames)[None, :] < lengths[:, None]).to(mask.dtype)

    # -- text -------------------------------------------------------------------------------------------------------
    def expand_placeholders(self, texts: list[str], num_audio_tokens: list[int]) -> list[str]:
        counts = [text.count(self.audio_token) for text in texts]
        if sum(counts) != len(num_audio_tokens):
            raise ValueError(
                f"the text holds {sum(counts)} audio placeholders ({self.audio_token}) but {len(num_audio_tokens)} "
                "audios were given: put exactly one placeholder per audio"
            )
        remaining = iter(num_audio_tokens)
        expanded = []
        for text in texts:
            pieces = text.split(self.audio_token)
            out = pieces[0]
            for piece in pieces[1:]:
                out += self.audio_token * next(remaining) + piece
            expanded.append(out)
        return expanded

    def __call__(
        self,
        text: str | list[str] | None = None,
        audio=None,
        targets: str | list[str] | None = None,
        sampling_rate: int | None = None,
        padding_side: str | None = None,
        return_tensors: str = "pt",
        long_audio: str | None = None,
    ) -> BatchFeature:
        """Tokenise prompts holding one `audio_token` per audio; with `targets`, append them (+ end of turn) and
        return `labels` that are -100 everywhere but on the target tokens. Text is left-padded for generation and
        right-padded for training unless `padding_side` says otherwise. `long_audio="one_prompt"`: audio longer than
        the encoder's window is encoded window by window (`input_features` then has a row per window) and all its
        mapper frames fill its one placeholder span."""
        if text is None:
            raise ValueError("text is required: a prompt with one audio placeholder per audio")
        texts = [text] if isinstance(text, str) else list(text)
        audios = [] if audio is None else ([audio] if not isinstance(audio, (list, tuple)) else list(audio))
        data = {}
        num_tokens = []
        if long_audio not in (None, "one_prompt"):
            raise ValueError(f"long_audio={long_audio!r}: the processor takes None or 'one_prompt'")
        if audios:
            clips = self.prepare_audio(audios, sampling_rate, windowed=long_audio == "one_prompt")
            data = self.extract_windowed_features(clips) if long_audio else self.extract_features(clips)
            num_tokens = data.pop("num_audio_tokens").tolist()
        prompts = self.expand_placeholders(texts, num_tokens)
        if targets is None:
            encoded = self.tokenizer(
                prompts, padding=True, padding_side=padding_side or "left", add_special_tokens=False, return_tensors="pt"
            )
        else:
            encoded = self.tokenize_with_targets(prompts, targets, padding_side or "right")
        data.update(encoded)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def tokenize_with_targets(self, prompts: list[str], targets, padding_side: str) -> dict:
        targets = [targets] if isinstance(targets, str) else list(targets)
        if len(targets) != len(prompts):
            raise ValueError(f"got {len(prompts)} prompts but {len(targets)} targets: give one target per prompt")
        end = self.end_of_turn_token
        rows, labels = [], []
        for prompt, target in zip(prompts, targets):
            prompt_ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            target_ids = self.tokenizer(target + end, add_special_tokens=False)["input_ids"]
            rows.append(prompt_ids + target_ids)
            labels.append([-100] * len(prompt_ids) + target_ids)
        return pad_rows(rows, labels, self.tokenizer.pad_token_id, padding_side)

    @property
    def end_of_turn_token(self) -> str:
        return self.tokenizer.eos_token or ""

    # -- chat -------------------------------------------------------------------------------------------------------
    def render_user_content(self, content) -> tuple[str, list]:
        """A message content (a string, or parts of type text/audio) → prompt text and its audios in order."""
        if isinstance(content, str):
            return content, []
        audios = [part.get("audio", part.get("path", part.get("url"))) for part in content if part["type"] == "audio"]
        instruction = " ".join(part["text"] for part in content if part["type"] == "text")
        if not audios:
            return instruction, []
        placeholders = "</speech>\n<speech>".join([self.audio_token] * len(audios))
        if not instruction:
            return self.prompt_template.split("</speech>")[0].format(audio=placeholders) + "</speech>", audios
        return self.prompt_template.format(audio=placeholders, instruction=instruction), audios

    def render_conversation(self, conversation: list[dict], add_generation_prompt: bool = True) -> tuple[str, list]:
        messages, audios = [], []
        for message in conversation:
            text, message_audios = self.render_user_content(message["content"])
            messages.append({"role": message["role"], "content": text})
            audios.extend(message_audios)
        prompt = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt, chat_template=self.chat_template
        )
        return prompt, audios

    def apply_chat_template(
        self,
        conversation,
        add_generation_prompt: bool = True,
        tokenize: bool = True,
        sampling_rate: int | None = None,
        targets=None,
        return_dict: bool = True,
        return_tensors: str = "pt",
    ):
        """One conversation (a list of messages) or a batch of them → model inputs (or the prompt strings).

        Message content is a string or a list of parts: {"type": "text", "text": ...} and
        {"type": "audio", "audio": path | bytes | array | {"array", "sampling_rate"}}. Tokenised output is always a
        dict (`return_dict` is accepted for compatibility with other processors)."""
        batch = conversation if conversation and isinstance(conversation[0], list) else [conversation]
        rendered = [self.render_conversation(c, add_generation_prompt) for c in batch]
        prompts = [prompt for prompt, _ in rendered]
        if not tokenize:
            return prompts[0] if batch is not conversation else prompts
        audios = [audio for _, conversation_audios in rendered for audio in conversation_audios]
        return self(
            text=prompts, audio=audios or None, targets=targets, sampling_rate=sampling_rate, return_tensors=return_tensors
        )

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_features", "input_features_mask"]


def pad_rows(rows: list[list[int]], labels: list[list[int]], pad_id: int, padding_side: str) -> dict:
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    label_ids = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels)):
        span = slice(0, len(row)) if padding_side == "right" else slice(width - len(row), width)
        input_ids[i, span] = torch.tensor(row)
        label_ids[i, span] = torch.tensor(label)
        attention[i, span] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": label_ids}


SpeechLLMProcessor.register_for_auto_class()

__all__ = ["SpeechLLMProcessor", "load_audio", "translation_instruction", "TRANSCRIBE_INSTRUCTION"]
