"""The `speech-instruct` pipeline: audio + an instruction in, text out (greedy decoding, as in the papers).

    pipe = pipeline("speech-instruct", model=checkpoint_dir, trust_remote_code=True)
    pipe("talk.wav", instruction="What is the talk about?")
    pipe("talk.wav", task="translate", target_language="de")
    pipe(["a.wav", "b.wav"], task="transcribe", batch_size=8)
    pipe([{"role": "user", "content": [{"type": "audio", "audio": "a.wav"}, {"type": "text", "text": "..."}]}])
    pipe("talk.wav", task="transcribe", streamer=TextIteratorStreamer(pipe.processor.tokenizer, skip_prompt=True))

Importing this module (inside the project) registers the config, model, processor and pipeline with the Auto
classes, so `pipeline("speech-instruct", model=dir)` also works without remote code.
"""

from torch.utils.data import DataLoader
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator

try:
    from .configuration_speechllm import SpeechLLMConfig
    from .modeling_speechllm import SpeechLLMForConditionalGeneration
    from .processing_speechllm import (
        TRANSCRIBE_INSTRUCTION,
        SpeechLLMProcessor,
        load_audio,
        translation_instruction,
    )
except ImportError:
    from configuration_speechllm import SpeechLLMConfig
    from modeling_speechllm import SpeechLLMForConditionalGeneration
    from processing_speechllm import TRANSCRIBE_INSTRUCTION, SpeechLLMProcessor, load_audio, translation_instruction

TASKS = ("transcribe", "translate", "answer")


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


def collate_items(items: list[dict]) -> dict:
    return {key: [value for item in items for value in item[key]] for key in items[0]}


class SpeechInstructPipeline(Pipeline):
    """Greedy speech-instruct generation with batching; the processor builds each batch as a whole."""

    _load_processor = True
    _load_feature_extractor = False
    _load_image_processor = False
    _load_tokenizer = False

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
        return preprocess, forward, {}

    def preprocess(self, inputs, instruction=None, sampling_rate=None):
        """One audio (or one chat conversation) → its prompt and decoded audio; tensors are built per batch."""
        if hasattr(inputs, "messages"):  # transformers wraps chat inputs in a Chat object
            inputs = inputs.messages
        if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) and "role" in inputs[0]:
            prompt, audios = self.processor.render_conversation(inputs)
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

    def _forward(self, model_inputs, **generate_kwargs):
        audios = model_inputs["audios"] or None
        batch = self.processor(text=model_inputs["prompts"], audio=audios, sampling_rate=self.processor.sampling_rate)
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
