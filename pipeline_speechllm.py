"""The `speech-instruct` pipeline: audio + an instruction in, text out (greedy decoding, as in the papers, unless the
checkpoint's config says its CTC head holds transcripts to what the mapper heard: ctc_decoding.py).

    pipe = pipeline("speech-instruct", model=checkpoint_dir, trust_remote_code=True)
    pipe("talk.wav", instruction="What is the talk about?")
    pipe("talk.wav", task="translate", target_language="de")
    pipe(["a.wav", "b.wav"], task="transcribe", batch_size=8)
    pipe([{"role": "user", "content": [{"type": "audio", "audio": "a.wav"}, {"type": "text", "text": "..."}]}])
    pipe("talk.wav", task="transcribe", streamer=TextIteratorStreamer(pipe.processor.tokenizer, skip_prompt=True))
    pipe("lecture.wav", task="transcribe", return_timestamps=True)   # any length: {"text", "chunks": [{"timestamp", "text"}]}
    pipe("a.wav", task="transcribe", return_timestamps="word")  # {"text", "chunks": [{"text": word, "timestamp", "confidence"}]}
    pipe("a.wav", task="transcribe", ctc_weight=0.3, num_beams=4)  # joint CTC/LLM beam search; ctc_weight=0: the LLM alone

Audio longer than the model takes in one piece (`processor.max_samples`: Whisper's 30 s window, or
`max_audio_seconds`) goes one of two ways:
- `long_audio="segments"` (the default for transcribe and translate): cut at pauses near 2/3 of that length
  (long_audio.py), the segments run in batches, their outputs joined;
- `long_audio="one_prompt"` (the default for questions and free instructions): encoded window by window, all its
  mapper frames in one audio span of one prompt, up to the LLM's context.

Importing this module (inside the project) registers the config, model, processor and pipeline with the Auto
classes, so `pipeline("speech-instruct", model=dir)` also works without remote code.
"""

import numpy as np
from torch.utils.data import DataLoader
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

try:
    from .configuration_speechllm import SpeechLLMConfig
    from .ctc_decoding import ctc_frame_seconds, word_alignments
    from .modeling_speechllm import SpeechLLMForConditionalGeneration
    from .long_audio import segment_bounds
    from .processing_speechllm import (
        TRANSCRIBE_INSTRUCTION,
        SpeechLLMProcessor,
        load_audio,
        translation_instruction,
    )
except ImportError:
    from configuration_speechllm import SpeechLLMConfig
    from ctc_decoding import ctc_frame_seconds, word_alignments
    from long_audio import segment_bounds
    from modeling_speechllm import SpeechLLMForConditionalGeneration
    from processing_speechllm import TRANSCRIBE_INSTRUCTION, SpeechLLMProcessor, load_audio, translation_instruction

TASKS = ("transcribe", "translate", "answer")
LONG_AUDIO_MODES = ("segments", "one_prompt")
# Tasks whose output for a recording is the outputs for its parts, joined: these go segment by segment by default.
SEGMENTED_TASKS = ("transcribe", "translate")
NO_SPACE_LANGUAGES = ("zh", "ja")  # segment outputs are joined without a space


def task_instruction(task: str | None, target_language: str | None, question: str | None) -> str:
    """The papers' instruction for a task helper, written in the target language."""
    if task == "transcribe":
        return TRANSCRIBE_INSTRUCTION
    if task == "translate":
        if target_language is None:
            raise ValueError("task='translate' needs target_language, e.g. 'de', 'it' or 'zh'")
        return translation_instruction(target_language)
    if task == "answer":
        if not question:
            raise ValueError("task='answer' needs question='...'")
        return question
    raise ValueError(f"unknown task {task!r}: use one of {TASKS}, or pass instruction='...'")


def is_chat(inputs) -> bool:
    return hasattr(inputs, "messages") or (isinstance(inputs, list) and bool(inputs) and isinstance(inputs[0], dict) and "role" in inputs[0])


def collate_items(items: list[dict]) -> dict:
    return {key: [value for item in items for value in item[key]] for key in items[0]}


class SpeechInstructPipeline(Pipeline):
    """Greedy speech-instruct generation with batching; the processor builds each batch as a whole. Audio of any
    length: see the module's docstring."""

    _load_processor = True
    _load_feature_extractor = False
    _load_image_processor = False
    _load_tokenizer = False

    def __call__(self, inputs, *args, long_audio=None, return_timestamps=False, **kwargs):
        """As any pipeline; audio longer than the model's window goes segment by segment or in one prompt
        (`long_audio`, see the module's docstring). `return_timestamps=True` gives {"text", "chunks":
        [{"timestamp": (start, end) seconds, "text"}]} per input, a chunk per segment; `return_timestamps="word"` a
        chunk per word, timed by the CTC head's alignment, with its "confidence" (the mean posterior of its tokens)."""
        if is_chat(inputs) or (isinstance(inputs, list) and inputs and is_chat(inputs[0])):
            return super().__call__(inputs, *args, **kwargs)
        single = not isinstance(inputs, list)
        items = [inputs] if single else inputs
        mode = long_audio or ("segments" if kwargs.get("task") in SEGMENTED_TASKS else "one_prompt")
        if mode not in LONG_AUDIO_MODES:
            raise ValueError(f"long_audio={long_audio!r}: use one of {LONG_AUDIO_MODES}")
        if return_timestamps not in (False, True, "word"):
            raise ValueError(f"return_timestamps={return_timestamps!r}: use True (segments) or 'word'")
        if return_timestamps == "word":
            if self.model.ctc_head is None:
                raise ValueError("return_timestamps='word' needs a CTC head, and this checkpoint has none (config.ctc_head)")
            if mode == "one_prompt":
                raise ValueError("return_timestamps='word' times each clip or segment: use long_audio='segments'")
            kwargs["word_timestamps"] = True
        group = 4 * max(1, kwargs.get("batch_size") or 1)  # decoded a group at a time: a long list is not held at once
        results = []
        for start in range(0, len(items), group):
            results += self.run_group(items[start : start + group], start, mode, return_timestamps, args, dict(kwargs))
        return results[0] if single else results

    def run_group(self, items: list, first: int, mode: str, return_timestamps: bool, args, kwargs: dict) -> list:
        rate = self.processor.sampling_rate
        clips = [load_audio(item, kwargs.get("sampling_rate"), rate, name=f"audio {first + i}") for i, item in enumerate(items)]
        kwargs["sampling_rate"] = rate
        pieces = [self.segments(clip, mode) for clip in clips]
        flat = [clip[start:end] for clip, bounds in zip(clips, pieces) for start, end in bounds]
        if kwargs.get("streamer") is not None and len(flat) > 1:
            raise ValueError(
                f"a streamer follows one generation, but this call makes {len(flat)} (long audio in segments, or several "
                "inputs): stream one input at a time, segment by segment (pipe.segments gives them; the demo page does "
                "this), or pass long_audio='one_prompt'"
            )
        outputs = iter(super().__call__(flat, *args, audio_mode=mode, **kwargs))
        results = []
        for bounds in pieces:
            segments = [(start / rate, end / rate, next(outputs)) for start, end in bounds]
            if return_timestamps == "word":
                texts = [output["text"] for _, _, output in segments]
                chunks = [shifted(word, start) for start, _, output in segments for word in output["words"]]
            else:
                texts = [output for _, _, output in segments]
                chunks = [{"timestamp": (start, end), "text": text} for start, end, text in segments]
            joined = self.join(texts, kwargs.get("target_language"))
            results.append({"text": joined, "chunks": chunks} if return_timestamps else joined)
        return results

    def segments(self, clip, mode: str) -> list[tuple[int, int]]:
        """The (start, end) samples the clip runs as: all of it (it fits, or goes in one prompt), else its segments."""
        limit = self.processor.max_samples
        if len(clip) <= limit or mode == "one_prompt":
            return [(0, len(clip))]
        longest = limit / self.processor.sampling_rate
        return segment_bounds(clip, self.processor.sampling_rate, target_seconds=2 * longest / 3, longest_seconds=longest)

    def check_context(self, prompt_tokens: int):
        """A prompt beyond the LLM's context (long audio in one prompt) is an error that says how much audio fits."""
        context = getattr(self.model.config.text_config, "max_position_embeddings", None)
        if context and prompt_tokens >= context:
            window = self.processor.max_samples  # audio tokens per minute, measured on one full window of silence
            tokens = int(self.processor.extract_features([np.zeros(window, dtype=np.float32)])["num_audio_tokens"][0])
            per_minute = tokens * 60 * self.processor.sampling_rate / window
            raise ValueError(
                f"the prompt has {prompt_tokens} tokens but the LLM's context is {context}: about "
                f"{context / per_minute:.0f} minutes of audio fit in one prompt; use long_audio='segments' for more"
            )

    @staticmethod
    def join(texts: list[str], target_language: str | None) -> str:
        separator = "" if target_language in NO_SPACE_LANGUAGES else " "
        return separator.join(text for text in texts if text)

    def _sanitize_parameters(
        self,
        instruction=None,
        task=None,
        target_language=None,
        question=None,
        sampling_rate=None,
        max_new_tokens=None,
        generate_kwargs=None,
        streamer=None,
        audio_mode=None,
        ctc_weight=None,
        num_beams=None,
        word_timestamps=None,
    ):
        preprocess = {}
        if instruction is not None or task is not None:
            preprocess["instruction"] = instruction if instruction is not None else task_instruction(task, target_language, question)
        if sampling_rate is not None:
            preprocess["sampling_rate"] = sampling_rate
        forward = dict(generate_kwargs or {})
        if max_new_tokens is not None:
            forward["max_new_tokens"] = max_new_tokens
        if streamer is not None:  # text as it is generated (transformers' TextStreamer / TextIteratorStreamer)
            forward["streamer"] = streamer
        if audio_mode is not None:
            forward["audio_mode"] = audio_mode
        forward.update(self.decoding_settings(task, ctc_weight, num_beams, streaming=streamer is not None))
        if word_timestamps:
            forward["word_timestamps"] = True
        return preprocess, forward, {}

    def decoding_settings(self, task, ctc_weight, num_beams, streaming: bool = False) -> dict:
        """`ctc_weight` and `num_beams` as given, else the config's for transcription (transcribe_ctc_weight,
        transcribe_num_beams); nothing for the other tasks, which decode greedily with the LLM alone. A streamer
        follows one hypothesis: streamed transcription keeps the CTC weight and searches greedily."""
        config = self.model.config
        if streaming and num_beams and num_beams > 1:
            raise ValueError("a streamer follows one hypothesis: stream with num_beams=1 (or do not stream)")
        if task == "transcribe":
            ctc_weight = config.transcribe_ctc_weight if ctc_weight is None else ctc_weight
            num_beams = (1 if streaming else config.transcribe_num_beams) if num_beams is None else num_beams
        settings = {}
        if ctc_weight:
            if self.model.ctc_head is None:
                raise ValueError("ctc_weight > 0 needs a CTC head, and this checkpoint has none (config.ctc_head)")
            settings["ctc_weight"] = ctc_weight
        if num_beams and num_beams > 1:
            settings["num_beams"] = num_beams
        return settings

    def preprocess(self, inputs, instruction=None, sampling_rate=None):
        """One audio (or one chat conversation) → its prompt and decoded audio; tensors are built per batch."""
        if is_chat(inputs):
            prompt, audios = self.processor.render_conversation(getattr(inputs, "messages", inputs))  # Chat wraps them
        else:
            if instruction is None:
                raise ValueError("pass instruction='...' or task='transcribe'|'translate'|'answer'")
            conversation = [{"role": "user", "content": [{"type": "audio", "audio": inputs}, {"type": "text", "text": instruction}]}]
            prompt, audios = self.processor.render_conversation(conversation)
        rate = self.processor.sampling_rate
        clips = [load_audio(audio, sampling_rate, rate, name=f"audio {i}") for i, audio in enumerate(audios)]
        return {"prompts": [prompt], "audios": clips}

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        dataset = PipelineDataset(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate_items)
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _forward(self, model_inputs, audio_mode=None, word_timestamps=False, **generate_kwargs):
        audios = model_inputs["audios"] or None
        long_audio = "one_prompt" if audio_mode == "one_prompt" else None
        batch = self.processor(text=model_inputs["prompts"], audio=audios, sampling_rate=self.processor.sampling_rate,
                               long_audio=long_audio)
        self.check_context(batch["input_ids"].shape[1])
        batch = batch.to(self.device)
        if generate_kwargs.get("streamer") is not None and len(model_inputs["prompts"]) > 1:
            raise ValueError("a streamer follows one generation at a time: call the pipeline with batch_size=1")
        if generate_kwargs.get("ctc_weight") and long_audio:
            raise ValueError("ctc_weight > 0 reads one clip per prompt: use long_audio='segments' (or ctc_weight=0)")
        generate_kwargs = {"do_sample": False, "max_new_tokens": 150, **generate_kwargs}
        sequences = self.model.generate(**batch, **generate_kwargs)
        new_tokens = sequences[:, batch["input_ids"].shape[1] :]
        if not word_timestamps:
            return {"new_tokens": new_tokens}
        return {"new_tokens": new_tokens, "words": self.timed_words(batch, new_tokens)}

    def timed_words(self, batch, new_tokens) -> list[list[dict]]:
        """Each row's words with their times in its clip, by forced alignment of its tokens to the CTC head's reading;
        a reading too long for the clip's CTC frames keeps its words without times (never a failed call)."""
        log_probs = self.model.ctc_log_probs(batch["input_features"], batch["input_features_mask"])
        frame_seconds = ctc_frame_seconds(self.model.config, self.processor.feature_extractor)
        special = set(self.processor.tokenizer.all_special_ids)
        rows = []
        for clip_log_probs, tokens in zip(log_probs, new_tokens.tolist()):
            tokens = [token for token in tokens if token not in special]
            try:
                words = word_alignments(clip_log_probs.cpu(), tokens, self.processor.tokenizer,
                                        self.model.config.mapper_pad_token_id, frame_seconds)
            except ValueError:
                text = self.processor.decode(tokens, skip_special_tokens=True)
                words = [{"word": word, "start": None, "end": None, "confidence": None} for word in text.split()]
            rows.append(words)
        return rows

    def save_pretrained(self, save_directory, **kwargs):
        """Model, remote code and the whole processor (the base class saves only tokenizer + feature extractor)."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)

    def postprocess(self, model_outputs):
        tokens = model_outputs["new_tokens"].reshape(-1)  # one input's row (batches are split by the iterator)
        text = self.processor.decode(tokens, skip_special_tokens=True).strip()
        if "words" not in model_outputs:
            return text
        words = model_outputs["words"]
        return {"text": text, "words": words[0] if words and isinstance(words[0], list) else words}


def shifted(word: dict, offset: float) -> dict:
    """A word of a segment as a chunk of the whole recording: its times moved by the segment's start."""
    start, end = word["start"], word["end"]
    timestamp = (None, None) if start is None else (round(start + offset, 3), round(end + offset, 3))
    return {"text": word["word"], "timestamp": timestamp, "confidence": word["confidence"]}


def native_cpu_dtype():
    """torch.bfloat16 where this CPU computes it natively (AVX-512 bf16, AMX): the default decodes ~1.8x faster in it, with
    the same WER on the dev speakers (default_model/TRIALS.md); else torch.float32 (emulated bf16 is ~20x slower). For
    `pipeline(..., dtype=native_cpu_dtype())`."""
    import torch

    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32


def register_speechllm():
    """Make the project's classes known to the Auto classes and to `pipeline()` (no remote code needed)."""
    AutoConfig.register("speechllm", SpeechLLMConfig, exist_ok=True)
    AutoModel.register(SpeechLLMConfig, SpeechLLMForConditionalGeneration, exist_ok=True)
    AutoModelForCausalLM.register(SpeechLLMConfig, SpeechLLMForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(SpeechLLMConfig, SpeechLLMProcessor, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        "speech-instruct", pipeline_class=SpeechInstructPipeline, pt_model=AutoModel, type="multimodal"
    )


register_speechllm()
