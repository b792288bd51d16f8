"""An instruct LLM converted from its pip package (conversion/parts.py) and run by CTranslate2 (int8, batched decoding:
several times faster than transformers on CPU). The data builds use it to write text (synthesis.genres), questions
(synthesis.questions) and translations (synthesis.translation).
"""

import os

# The instruct models that load offline (names in conversion.parts.PARTS).
WRITERS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
DEFAULT_WRITER = "qwen2.5-coder-1.5b-instruct"
# A shared prompt prefix shorter than this is not worth a static-prompt cache entry.
MIN_STATIC_PROMPT = 8


class InstructLLM:
    """Chat-templated prompts in, the assistant's replies out; greedy unless a temperature is given."""

    def __init__(self, model_dir: str, ct2_dir: str, threads: int = 0):
        import ctranslate2
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if not os.path.exists(os.path.join(ct2_dir, "model.bin")):
            convert_to_ctranslate2(model_dir, ct2_dir)
        self.generator = ctranslate2.Generator(ct2_dir, device="cpu", compute_type="int8", intra_threads=threads)
        vocabulary = self.tokenizer.get_vocab()
        self.end_tokens = [t for t in (self.tokenizer.eos_token, "<|im_end|>", "<end_of_turn>") if t in vocabulary]

    def prompt_tokens(self, instruction: str) -> list[str]:
        prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": instruction}], add_generation_prompt=True, tokenize=False)
        return self.tokenizer.convert_ids_to_tokens(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text)["input_ids"])

    def reply(self, instructions: list[str], max_new_tokens: int, batch_size: int = 16, temperature: float = 0.0,
              seed: int = 0) -> list[str]:
        """One reply per instruction. A temperature above 0 samples (top-k 50, top-p 0.95) from a seeded generator."""
        import ctranslate2

        sampling = {"sampling_topk": 1}
        if temperature > 0:
            ctranslate2.set_random_seed(seed)
            sampling = {"sampling_topk": 50, "sampling_topp": 0.95, "sampling_temperature": temperature}
        prompts = [self.prompt_tokens(instruction) for instruction in instructions]
        # The tokens every prompt starts with (chat template + instruction) are computed once and cached by
        # CTranslate2: for short texts they are most of the prompt, and prefill is most of the time on CPU.
        shared = shared_prompt_length(prompts)
        static = {"static_prompt": prompts[0][:shared]} if shared else {}
        results = self.generator.generate_batch(
            [prompt[shared:] for prompt in prompts], max_batch_size=batch_size,
            max_length=max_new_tokens, include_prompt_in_result=False, end_token=self.end_tokens, **static, **sampling,
        )
        return [self.tokenizer.decode(result.sequences_ids[0], skip_special_tokens=True).strip() for result in results]


def shared_prompt_length(prompts: list[list[str]]) -> int:
    """How many leading tokens all prompts share, leaving each at least one of its own; 0 when too few to cache."""
    if len(prompts) < 2:
        return 0
    shared = min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1)
    return shared if shared >= MIN_STATIC_PROMPT else 0


def convert_to_ctranslate2(model_dir: str, ct2_dir: str):
    """int8 CTranslate2 copy of a transformers checkpoint, written under a temporary name then renamed."""
    from ctranslate2.converters import TransformersConverter

    partial = ct2_dir + ".partial"
    TransformersConverter(model_dir, load_as_float16=False).convert(partial, quantization="int8", force=True)
    os.replace(partial, ct2_dir)


def load_writer(name: str = DEFAULT_WRITER) -> InstructLLM:
    from conversion import parts

    model_dir = parts.part(name)
    return InstructLLM(model_dir, model_dir + "-ct2-int8")


def add_writer_options(parser, writer_help: str = "the local LLM that writes (synthesis.llm.WRITERS)"):
    """--writer (a local model) or --llm_endpoint URL --llm_model NAME (any OpenAI-compatible server)."""
    parser.add_argument("--writer", choices=list(WRITERS), default=None, help=writer_help)
    add_endpoint_options(parser)


def add_endpoint_options(parser):
    parser.add_argument("--llm_endpoint", help="an OpenAI-compatible server's URL (e.g. http://HOST:8000/v1): write "
                                               "through it instead of a local model (synthesis/endpoint.py)")
    parser.add_argument("--llm_model", help="the model name the endpoint serves (needed with --llm_endpoint)")
    parser.add_argument("--llm_concurrency", type=int, default=8, help="requests in flight at the endpoint")
    parser.add_argument("--llm_retries", type=int, default=5, help="retries of a failed request (with backoff) before the "
                                                                   "build stops; it resumes from its caches")


def writer_from_args(args):
    """The LLM the options name: the endpoint's model, or a local one (DEFAULT_WRITER unless --writer)."""
    if args.llm_endpoint and getattr(args, "writer", None):
        raise SystemExit("give --writer (a local model) or --llm_endpoint (a server), not both")
    return endpoint_from_args(args) or load_writer(args.writer or DEFAULT_WRITER)


def endpoint_from_args(args):
    """The endpoint's LLM where --llm_endpoint is given, else None."""
    if not args.llm_endpoint:
        return None
    if not args.llm_model:
        raise SystemExit("--llm_endpoint needs --llm_model: the name the server serves the model under")
    from synthesis.endpoint import EndpointLLM

    return EndpointLLM(args.llm_endpoint, args.llm_model, concurrency=args.llm_concurrency, max_retries=args.llm_retries)
