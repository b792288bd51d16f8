"""The `speech-instruct` pipeline: audio + an instruction in, text out (greedy decoding, as in the papers).

    pipe = pipeline("speech-instruct", model=checkpoint_dir, trust_remote_code=True)
    pipe("talk.wav", instruction="What is the talk about?")
    pipe("talk.wav", task="translate", target_language="de")
    pipe(["a.wav", "b.wav"], task="transcribe", batch_size=8)
    pipe([{"role": "user", "content": [{"type": "audio", "audio": "a.wav"}, {"type": "text", "text": "..."}]}])
    pipe("talk.wav", task="transcribe", streamer=TextIteratorStreamer(pipe.processor.tokenizer, skip_prompt=True))
    pipe("lecture.wav", task="transcribe", return_timestamps=True)   # any length: {"text", "chunks": [{"timestamp", "text"}]}

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
        (`long_audio`, see the module's docstring), and `return_timestamps=True` gives {"text", "chunks":
        [{"timestamp": (start, end) seconds, "text"}]} per input."""
        if is_chat(inputs) or (isinstance(inputs, list) and inputs and is_chat(inputs[0])):
            return super().__call__(inputs, *args, **kwargs)
        single = not isinstance(inputs, list)
        items = [inputs] if single else inputs
        mode = long_audio or ("segments" if kwargs.get("task") in SEGMENTED_TASKS else "one_prompt")
        if mode not in LONG_AUDIO_MODES:
            raise ValueError(f"long_audio={long_audio!r}: use one of {LONG_AUDIO_MODES}")
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
        texts = iter(super().__call__(flat, *args, audio_mode=mode, **kwargs))
        results = []
        for bounds in pieces:
            chunks = [{"timestamp": (start / rate, end / rate), "text": next(texts)} for start, end in bounds]
            joined = self.join([chunk["text"] for chunk in chunks], kwargs.get("target_language"))
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
        return preprocess, forward, {}

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

    def _forward(self, model_inputs, audio_mode=None, **generate_kwargs):
        audios = model_inputs["audios"] or None
        long_audio = "one_prompt" if audio_mode == "one_prompt" else None
        batch = self.processor(text=model_inputs["prompts"], audio=audios, sampling_rate=self.processor.sampling_rate,
                               long_audio=long_audio)
        self.check_context(batch["input_ids"].shape[1])
        batch = batch.to(self.device)
        if generate_kwargs.get("streamer") is not None and len(model_inputs["prompts"]) > 1:
            raise ValueError("a streamer follows one generation at a time: call the pipeline with batch_size=1")
        generate_kwargs = {"do_sample": False, "max_new_tokens": 150, **generate_kwargs}
        sequences = self.model.generate(**batch, **generate_kwargs)
        return {"new_tokens": sequences[:, batch["input_ids"].shape[1] :]}

    def save_pretrained(self, save_directory, **kwargs):
        """Model, remote code and the whole processor (the base class saves only tokenizer + feature extractor)."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)

    def postprocess(self, model_outputs):
        tokens = model_outputs["new_tokens"].reshape(-1)  # one input's row (batches are split by the iterator)
        return self.processor.decode(tokens, skip_special_tokens=True).strip()


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
