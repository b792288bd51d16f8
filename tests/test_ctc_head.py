"""The compact CTC head in a checkpoint: trained in stage A, kept trained in stage C, and read by joint CTC/LLM
decoding and word timestamps through `generate` and the pipeline."""

import pytest
import torch
from conftest import make_audio
from transformers import pipeline

import pipeline_speechllm  # noqa: F401  (registers speech-instruct)
from ctc_decoding import CTCPrefixScorer
from modeling_speechllm import EmbeddingCTCHead, SpeechLLMForConditionalGeneration
from processing_speechllm import TRANSCRIBE_INSTRUCTION


def transcribe_inputs(processor, clips):
    prompt = processor.render_conversation(
        [{"role": "user", "content": [{"type": "audio", "audio": "clip"}, {"type": "text", "text": TRANSCRIBE_INSTRUCTION}]}]
    )[0]
    return processor(text=[prompt] * len(clips), audio=list(clips), sampling_rate=16000)


def ctc_only_greedy(model, features, mask, eos_id, steps):
    """At each step the token of highest CTC prefix score (the end token: the whole reading's score), by hand."""
    blank = model.config.mapper_pad_token_id
    vocabulary = [t for t in range(model.config.text_config.vocab_size) if t != blank]
    readings = []
    for log_probs in model.ctc_log_probs(features, mask):
        scorer = CTCPrefixScorer(log_probs, blank)
        state, tokens = scorer.initial_state(), []
        for _ in range(steps):
            words = [t for t in vocabulary if t != eos_id]
            psi, states = scorer.extend(state, words)
            best = int(psi.argmax())
            if scorer.final_score(state) >= float(psi[best]):
                tokens.append(eos_id)
                break
            tokens.append(words[best])
            state = states[best]
        readings.append(tokens)
    return readings


def test_the_tiny_checkpoint_has_a_compact_head(tiny):
    model, _ = tiny
    assert isinstance(model.ctc_head, EmbeddingCTCHead)
    config = model.config
    hidden = config.text_config.hidden_size
    expected = config.mapper_widths[0] * hidden + hidden + config.text_config.vocab_size + hidden  # + the blank's vector
    assert sum(p.numel() for p in model.ctc_head.parameters()) == expected


def test_full_ctc_weight_decodes_the_ctc_prefix_score_alone(tiny):
    """λ = 1 with every token a candidate: the LLM no longer decides, so greedy search must pick, step by step, the
    token that a hand-run of the prefix scorer picks (rows of two clips of different lengths, batched)."""
    model, processor = tiny
    inputs = transcribe_inputs(processor, [make_audio(1.2, seed=3), make_audio(2.0, seed=4)])
    eos = model.generation_config.eos_token_id
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=5, ctc_weight=1.0, ctc_candidates=model.config.text_config.vocab_size)
    generated = out[:, inputs["input_ids"].shape[1] :].tolist()
    expected = ctc_only_greedy(model, inputs["input_features"], inputs["input_features_mask"], eos, 5)
    assert any(len(reading) > 1 for reading in expected)  # the hand-run reads words, not only the end
    for row, reading in zip(generated, expected):
        assert row[: len(reading)] == reading


def test_ctc_weight_zero_is_the_plain_greedy_decoder(tiny):
    model, processor = tiny
    inputs = transcribe_inputs(processor, [make_audio(1.5, seed=5)])
    with torch.no_grad():
        plain = model.generate(**inputs, do_sample=False, max_new_tokens=6, min_new_tokens=6)
        zero = model.generate(**inputs, do_sample=False, max_new_tokens=6, min_new_tokens=6, ctc_weight=0.0)
        joint = model.generate(**inputs, do_sample=False, max_new_tokens=6, min_new_tokens=6, ctc_weight=0.9, ctc_candidates=50)
    assert torch.equal(plain, zero)
    assert not torch.equal(plain, joint)  # the head's reading moves a random model's choices: the option is live


def test_joint_beam_search_gives_each_clip_what_it_gives_alone(tiny):
    """Beam rows are matched to their own clip's CTC reading: a batch of two clips decodes each as it decodes alone."""
    model, processor = tiny
    clips = [make_audio(1.0, seed=8), make_audio(2.2, seed=9)]
    kwargs = dict(max_new_tokens=6, min_new_tokens=6, ctc_weight=0.4, num_beams=3, ctc_candidates=6)

    def new_tokens(inputs):
        with torch.no_grad():
            out = model.generate(**inputs, **kwargs)
        return out[:, inputs["input_ids"].shape[1] :].tolist()

    batched = new_tokens(transcribe_inputs(processor, clips))
    alone = [new_tokens(transcribe_inputs(processor, [clip]))[0] for clip in clips]
    assert batched == alone
    with torch.no_grad():
        plain = model.generate(**transcribe_inputs(processor, clips), max_new_tokens=6, min_new_tokens=6, num_beams=3)
    assert plain[:, -6:].tolist() != batched  # the CTC scores took part


def test_pipeline_decodes_transcripts_as_the_config_says(tiny_checkpoint):
    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    audio = make_audio(1.5, seed=7)
    kwargs = dict(sampling_rate=16000, max_new_tokens=6, generate_kwargs={"min_new_tokens": 6})
    greedy = pipe(audio, task="transcribe", **kwargs)
    pipe.model.config.transcribe_ctc_weight, pipe.model.config.transcribe_num_beams = 0.9, 2
    try:
        by_config = pipe(audio, task="transcribe", **kwargs)
        asked_greedy = pipe(audio, task="transcribe", ctc_weight=0, num_beams=1, **kwargs)
        asked_joint = pipe(audio, task="transcribe", ctc_weight=0.9, num_beams=2, **kwargs)
        translation = pipe(audio, task="translate", target_language="de", **kwargs)
    finally:
        pipe.model.config.transcribe_ctc_weight, pipe.model.config.transcribe_num_beams = 0.0, 1
    assert asked_greedy == greedy
    assert by_config == asked_joint
    assert translation == pipe(audio, task="translate", target_language="de", **kwargs)  # other tasks: the LLM alone


def test_word_timestamps_are_monotonic_and_inside_the_clip(tiny_checkpoint):
    pipe = pipeline("speech-instruct", model=tiny_checkpoint)
    seconds = 2.5
    result = pipe(make_audio(seconds, seed=2), task="transcribe", return_timestamps="word", sampling_rate=16000,
                  max_new_tokens=6, ctc_weight=0.9, generate_kwargs={"min_new_tokens": 6})
    plain = pipe(make_audio(seconds, seed=2), task="transcribe", sampling_rate=16000, max_new_tokens=6, ctc_weight=0.9,
                 generate_kwargs={"min_new_tokens": 6})
    assert result["text"] == plain
    assert " ".join(chunk["text"] for chunk in result["chunks"]).split() == plain.split()
    times = [t for chunk in result["chunks"] for t in chunk["timestamp"]]
    assert times and all(t is not None for t in times)
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= seconds + 1e-6
    assert all(0 < chunk["confidence"] <= 1 for chunk in result["chunks"])


def test_a_checkpoint_keeps_its_ctc_head_through_save_and_load(tiny, tmp_path):
    model, processor = tiny
    with torch.no_grad():
        model.ctc_head.bias.normal_()  # not the initial zeros: a load that re-initialised it would show
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    for key, value in model.ctc_head.state_dict().items():
        torch.testing.assert_close(loaded.ctc_head.state_dict()[key], value)
    inputs = transcribe_inputs(processor, [make_audio(1.0, seed=1)])
    torch.testing.assert_close(
        loaded.ctc_log_probs(inputs["input_features"], inputs["input_features_mask"])[0],
        model.ctc_log_probs(inputs["input_features"], inputs["input_features_mask"])[0],
    )
    with torch.no_grad():
        model.ctc_head.bias.zero_()


def test_stage_c_keeps_the_ctc_head_trained(tiny):
    """joint_ctc_weight > 0: the loss is the CE (+σ·MSE) plus λ·CTC, and the CTC head gets a gradient."""
    from training.data import pad_token_rows

    model, processor = tiny
    clips, transcripts = [make_audio(2.0, seed=1), make_audio(1.6, seed=2)], ["the fox", "speech"]
    conversation = [[{"role": "user", "content": [{"type": "audio", "audio": {"array": c, "sampling_rate": 16000}},
                                                  {"type": "text", "text": TRANSCRIBE_INSTRUCTION}]}] for c in clips]
    batch = dict(processor.apply_chat_template(conversation, targets=transcripts))
    batch["transcript_ids"] = pad_token_rows([processor.tokenizer(t, add_special_tokens=False)["input_ids"] for t in transcripts])
    model.train()
    try:
        without = model(**batch)
        model.config.joint_ctc_weight = 0.3
        model.zero_grad()
        joined = model(**batch)
        joined.loss.backward()
    finally:
        model.config.joint_ctc_weight = 0.0
        model.eval()
    assert without.ctc_loss is None and joined.ctc_loss > 0
    torch.testing.assert_close(joined.loss, without.loss + 0.3 * joined.ctc_loss)
    assert model.ctc_head.projection.weight.grad is not None and model.ctc_head.projection.weight.grad.abs().sum() > 0
    model.zero_grad()


@pytest.mark.parametrize("ctc_weight", [0.0, 0.4])
def test_beam_search_runs_the_prompt_once_and_decodes_as_generate_does(tiny, ctc_weight):
    """The prompt (audio included) prefilled once per clip and its cache copied to the beams gives the tokens that
    transformers' own generate gives, which runs the whole prompt for every beam (left-padded rows of two clips)."""
    from transformers import GenerationMixin, LogitsProcessorList

    model, processor = tiny
    inputs = transcribe_inputs(processor, [make_audio(1.1, seed=11), make_audio(2.4, seed=12)])
    settings = dict(max_new_tokens=6, min_new_tokens=6, num_beams=3, do_sample=False)
    calls = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs.get("input_features") is not None),
                                           with_kwargs=True)
    try:
        with torch.no_grad():
            shared = model.generate(**inputs, **settings, ctc_weight=ctc_weight, ctc_candidates=6)
    finally:
        hook.remove()
    assert calls.count(True) == 1  # the audio went through the model once, for all beams
    processors = LogitsProcessorList()
    if ctc_weight:
        processors.append(model.ctc_scorer(dict(inputs), model.generation_config, 3, ctc_weight, 6))
    with torch.no_grad():
        reference = GenerationMixin.generate(model, **inputs, **settings, logits_processor=processors)
    assert shared[:, -6:].tolist() == reference[:, -6:].tolist()
