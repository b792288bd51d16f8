"""The model: lengths, placeholders, parameter count, stage-A and stage-B/C losses, generation, save/load."""

import copy

import numpy as np
import pytest
import torch
from conftest import greedy, make_audio
from transformers import LlamaConfig, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from configuration_speechllm import SpeechLLMConfig
from modeling_speechllm import (
    SpeechLLMForConditionalGeneration,
    SpeechMapper,
    WhisperValidFramesEncoder,
    average_frames,
    mapper_output_lengths,
)


def test_default_mapper_has_the_papers_277m_parameters():
    mapper = SpeechMapper(SpeechLLMConfig())  # Seamless-large (1024) → Llama-3.1-8B (4096)
    count = sum(p.numel() for p in mapper.parameters())
    assert abs(count - 277e6) / 277e6 < 0.05, count


def test_default_mapper_is_8x_shorter():
    config = SpeechLLMConfig()
    assert config.total_downsampling == 8
    assert mapper_output_lengths(torch.tensor([800]), config).item() == 100


def test_2026_variant_strides_give_a_ctc_head_after_block_one():
    config = SpeechLLMConfig(mapper_strides=[1, 4], stage_a_loss="l1_cosine_contrastive_ctc",
                             text_config=LlamaConfig(hidden_size=64, vocab_size=100, num_hidden_layers=1,
                                                     num_attention_heads=4, intermediate_size=64))
    assert config.total_downsampling == 8
    model = SpeechLLMForConditionalGeneration(config)
    assert model.ctc_head.out_features == 100


def tiny_whisper_encoders():
    config = WhisperConfig(
        d_model=32, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=64, num_mel_bins=16, max_source_positions=40
    )
    torch.manual_seed(0)
    reference = WhisperEncoder(config).eval()
    valid_frames = WhisperValidFramesEncoder(config).eval()
    valid_frames.load_state_dict(reference.state_dict())
    return reference, valid_frames


def test_whisper_on_a_full_window_equals_transformers_whisper_encoder():
    reference, valid_frames = tiny_whisper_encoders()
    features = torch.randn(2, 16, 80)  # the whole 2 × 40-position window
    expected = reference(features, output_hidden_states=True)
    got = valid_frames(features, output_hidden_states=True)
    assert len(got.hidden_states) == len(expected.hidden_states) == 3
    for mine, theirs in zip(got.hidden_states, expected.hidden_states):
        torch.testing.assert_close(mine, theirs)


def test_whisper_valid_frames_ignore_what_follows_the_clip():
    _, encoder = tiny_whisper_encoders()
    clip = torch.randn(1, 16, 23)
    alone = encoder(clip).last_hidden_state
    padded = torch.cat([clip, 5 + torch.randn(1, 16, 31)], dim=-1)
    mask = (torch.arange(54) < 23).long()[None]
    in_batch = encoder(padded, attention_mask=mask).last_hidden_state
    assert alone.shape[1] == 12 and in_batch.shape[1] == 27
    torch.testing.assert_close(in_batch[:, :12], alone)
    with pytest.raises(ValueError, match="at most 80 mel frames"):
        encoder(torch.randn(1, 16, 81))


def test_average_frames_ignores_padding():
    frames = torch.arange(10, dtype=torch.float).view(1, 5, 2).repeat(2, 1, 1)
    averaged, lengths = average_frames(frames, torch.tensor([5, 3]), 2)
    assert lengths.tolist() == [3, 2]
    # second clip: frames 0,1 averaged, then frame 2 alone (frames 3,4 are padding)
    assert averaged[1, :2].tolist() == [[1.0, 2.0], [4.0, 5.0]]
    assert averaged[0, 2].tolist() == [8.0, 9.0]


@pytest.mark.parametrize("fixture", ["tiny", "tiny_whisper", "tiny_w2v_bert"])
def test_processor_token_counts_match_the_models_frames(fixture, request):
    model, processor = request.getfixturevalue(fixture)
    lengths = [0.3, 0.5, 0.61, 0.77, 1.0, 1.37, 2.0, 2.93, 3.33]
    clips = [make_audio(s, seed=i) for i, s in enumerate(lengths)]
    prompts = [processor.audio_token] * len(clips)
    batch = processor(text=prompts, audio=clips, sampling_rate=16000)
    with torch.no_grad():
        audio = model.get_audio_features(batch["input_features"], batch["input_features_mask"])
    expected = (batch["input_ids"] == processor.audio_token_id).sum(-1)
    assert audio.lengths.tolist() == expected.tolist()
    assert min(expected.tolist()) >= 1 and len(set(expected.tolist())) > 4


def test_placeholder_mismatch_states_both_counts(tiny):
    model, processor = tiny
    batch = processor(text=[processor.audio_token], audio=[make_audio(1.0)], sampling_rate=16000)
    ids = batch["input_ids"].clone()
    ids[0, (ids[0] == processor.audio_token_id).nonzero()[0]] = 5  # one placeholder fewer
    with pytest.raises(ValueError, match=r"has (\d+) audio placeholder tokens but the audio gives (\d+) mapper frames"):
        model(input_ids=ids, input_features=batch["input_features"], input_features_mask=batch["input_features_mask"])


def test_audio_embeddings_land_on_the_placeholders(tiny):
    model, processor = tiny
    batch = processor(text=["hi " + processor.audio_token + " there"], audio=[make_audio(1.0)], sampling_rate=16000)
    captured = {}

    def capture(module, args, kwargs):
        captured["embeds"] = kwargs.get("hidden_states", args[0] if args else None)

    hook = model.language_model.model.layers[0].register_forward_pre_hook(capture, with_kwargs=True)
    with torch.no_grad():
        out = model(**batch)
    hook.remove()
    positions = batch["input_ids"][0] == processor.audio_token_id
    embeds = captured["embeds"][0]
    assert torch.allclose(embeds[positions], out.audio_embeddings[0, : int(positions.sum())], atol=1e-6)
    text_embeds = model.get_input_embeddings()(batch["input_ids"][0, ~positions])
    assert torch.allclose(embeds[~positions], text_embeds, atol=1e-6)


# -- stage A ---------------------------------------------------------------------------------------------------------


def stage_a_batch(processor, transcripts, seconds):
    clips = [make_audio(s, seed=i) for i, s in enumerate(seconds)]
    features = processor.extract_features(clips)
    ids = [processor.tokenizer(t, add_special_tokens=False)["input_ids"] for t in transcripts]
    width = max(map(len, ids))
    transcript_ids = torch.tensor([row + [-100] * (width - len(row)) for row in ids])
    return features, transcript_ids


def test_stage_a_never_calls_the_llm_layers(tiny):
    model, processor = tiny
    features, transcript_ids = stage_a_batch(processor, ["the fox", "speech"], [2.0, 1.5])

    def refuse(*args, **kwargs):
        raise AssertionError("stage A ran an LLM layer")

    hooks = [layer.register_forward_pre_hook(refuse) for layer in model.language_model.model.layers]
    hooks.append(model.language_model.lm_head.register_forward_pre_hook(refuse))
    try:
        out = model.stage_a_loss(features["input_features"], features["input_features_mask"], transcript_ids)
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.isfinite(out.loss)


def test_stage_a_loss_matches_its_definition(tiny):
    model, processor = tiny
    features, transcript_ids = stage_a_batch(processor, ["the quick fox", "speech"], [2.5, 1.5])
    with torch.no_grad():
        out = model.stage_a_loss(features["input_features"], features["input_features_mask"], transcript_ids)
    table = model.get_input_embeddings().weight
    pad = table[model.config.mapper_pad_token_id]
    alpha, gamma = model.config.loss_alpha, model.config.loss_gamma
    word_sq, pad_sq, cosines = [], [], []
    for row in range(2):
        tokens = transcript_ids[row][transcript_ids[row] != -100]
        n_out = int(out.lengths[row])
        target = torch.cat([table[tokens], pad.expand(n_out - len(tokens), -1)])
        produced = out.embeddings[row, :n_out]
        squared = (produced - target).pow(2).mean(-1)
        word_sq.append(squared[: len(tokens) + 1])  # real tokens + the first pad
        pad_sq.append(squared[len(tokens) + 1 :])
        cosines.append(torch.cosine_similarity(produced, target, dim=-1)[: len(tokens) + 1])
    expected = alpha * torch.cat(word_sq).mean() + (10 - alpha) * torch.cat(pad_sq).mean() - gamma * torch.cat(cosines).mean()
    # + the CTC term of the checkpoint's compact head (block 1, over the whole vocabulary, the mapper's pad as blank)
    with torch.no_grad():
        audio = model.get_audio_features(features["input_features"], features["input_features_mask"])
        log_probs = model.ctc_head(audio.first_block_hidden, table).log_softmax(-1).transpose(0, 1)
    lengths = (transcript_ids != -100).sum(-1)
    ctc = torch.nn.functional.ctc_loss(log_probs, transcript_ids.clamp(min=0), audio.first_block_lengths, lengths,
                                       blank=model.config.mapper_pad_token_id, zero_infinity=True)
    expected = expected + model.config.ctc_weight * ctc
    assert torch.allclose(out.parts["ctc"], ctc, atol=1e-5)
    assert torch.allclose(out.loss, expected, atol=1e-4), (out.loss, expected)


def test_transcript_longer_than_the_mapper_output_is_a_clear_error(tiny):
    model, processor = tiny
    features, transcript_ids = stage_a_batch(processor, ["the quick brown fox jumps over the lazy dog " * 3], [0.5])
    with pytest.raises(ValueError, match=r"transcript 0 has \d+ tokens but its audio gives only \d+ mapper frames"):
        model.stage_a_loss(features["input_features"], features["input_features_mask"], transcript_ids)


def test_2026_stage_a_loss_trains_the_ctc_head(tiny):
    model, processor = tiny
    config = copy.deepcopy(model.config)
    config.stage_a_loss = "l1_cosine_contrastive_ctc"
    config.ctc_head = "vocabulary"  # the 2026 paper's head over the whole vocabulary
    model_2026 = SpeechLLMForConditionalGeneration(config)
    features, transcript_ids = stage_a_batch(processor, ["the fox", "speech"], [2.0, 1.5])
    out = model_2026.stage_a_loss(features["input_features"], features["input_features_mask"], transcript_ids)
    assert set(out.parts) == {"l1", "cosine", "contrastive", "ctc"}
    out.loss.backward()
    assert model_2026.ctc_head.weight.grad.abs().sum() > 0
    assert model_2026.multi_modal_projector.output_projection.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model_2026.audio_tower.parameters())


def test_2026_loss_over_a_sampled_vocabulary_uses_only_the_targets_and_the_sample(tiny):
    model, processor = tiny
    config = copy.deepcopy(model.config)
    config.stage_a_loss = "l1_cosine_contrastive_ctc"
    config.ctc_head = "vocabulary"  # the 2026 paper's head over the whole vocabulary
    torch.manual_seed(0)
    full_model = SpeechLLMForConditionalGeneration(config)
    sampled_config = copy.deepcopy(config)
    sampled_config.loss_vocabulary_sample = 0  # the batch's targets and the blank only
    sampled_model = SpeechLLMForConditionalGeneration(sampled_config)
    sampled_model.load_state_dict(full_model.state_dict())
    features, transcript_ids = stage_a_batch(processor, ["the fox", "speech"], [2.0, 1.5])
    full = full_model.stage_a_loss(features["input_features"], features["input_features_mask"], transcript_ids)
    sampled = sampled_model.stage_a_loss(features["input_features"], features["input_features_mask"], transcript_ids)
    sampled.loss.backward()
    kept = set(transcript_ids[transcript_ids >= 0].tolist()) | {config.mapper_pad_token_id}
    touched = set(torch.nonzero(sampled_model.ctc_head.weight.grad.abs().sum(-1)).flatten().tolist())
    assert touched == kept
    # Fewer negatives: a smaller contrastive and CTC loss than over the whole vocabulary; L1 and cosine unchanged.
    assert sampled.parts["contrastive"] < full.parts["contrastive"] and sampled.parts["ctc"] < full.parts["ctc"]
    torch.testing.assert_close(sampled.parts["l1"], full.parts["l1"])
    torch.testing.assert_close(sampled.parts["cosine"], full.parts["cosine"])


# -- stage B/C -------------------------------------------------------------------------------------------------------


def test_labels_cover_only_the_answer_tokens(tiny):
    _, processor = tiny
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": make_audio(1.0)}, {"type": "text", "text": "what?"}]}]
    batch = processor.apply_chat_template(conversation, targets="the fox", sampling_rate=16000)
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    answer = processor.tokenizer("the fox" + processor.tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    assert labels[labels != -100].tolist() == answer
    assert ids[-len(answer):].tolist() == answer
    assert (labels[ids == processor.audio_token_id] == -100).all()


def test_loss_honours_num_items_in_batch_and_sigma_mse(tiny):
    model, processor = tiny
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": make_audio(2.0)}, {"type": "text", "text": "say it"}]}]
    batch = processor.apply_chat_template(conversation, targets="the fox", sampling_rate=16000)
    n_items = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        mean_loss = model(**batch).loss
        summed = model(**batch, num_items_in_batch=torch.tensor(2 * n_items)).loss
    assert torch.allclose(summed * 2, mean_loss, atol=1e-5)

    transcript_ids = torch.tensor([processor.tokenizer("the fox", add_special_tokens=False)["input_ids"]])
    sigma_model = copy.deepcopy(model)
    sigma_model.config.loss_sigma = 0.9
    with torch.no_grad():
        out = sigma_model(**batch, transcript_ids=transcript_ids)
    assert torch.allclose(out.loss, 0.1 * out.ce_loss + 0.9 * out.mse_loss, atol=1e-6)
    assert torch.allclose(out.ce_loss, mean_loss, atol=1e-6) and out.mse_loss > 0


@pytest.mark.parametrize("num_items", [None, 11])
def test_training_ce_from_the_answer_logits_alone_equals_the_lms_own(tiny, num_items):
    """In training the output layer runs only on answer positions (a fraction of a prompt with audio; over Qwen's
    152K rows that is ~20 % of a step): the same loss and the same gradients as the LM's full forward."""
    model, processor = tiny
    model = copy.deepcopy(model).enable_lora()
    conversations = [
        [{"role": "user", "content": [{"type": "audio", "audio": make_audio(d)}, {"type": "text", "text": "say it"}]}]
        for d in (1.5, 2.5)
    ]
    batch = processor.apply_chat_template(conversations, targets=["the fox", "a much longer answer here"], sampling_rate=16000)
    extra = {} if num_items is None else {"num_items_in_batch": torch.tensor(num_items)}
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)
    losses, grads = [], []
    for answer_only in (True, False):
        model.zero_grad()
        embeds.grad = None
        if answer_only:
            out = model.answer_only_lm_forward(embeds, batch["attention_mask"], None, batch["labels"], **extra)
            assert out.logits.shape[0] == int((batch["labels"][:, 1:] != -100).sum())
        else:
            out = model.language_model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"], **extra)
        out.loss.backward()
        losses.append(out.loss.detach())
        grads.append([embeds.grad.clone()] + [p.grad.clone() for n, p in model.named_parameters() if "lora_B" in n])
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))
    model.train()
    for module in model.modules():  # the mapper's dropout off: training and eval forwards see the same embeddings
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    trained = model(**batch, **extra)
    assert trained.logits.dim() == 2  # the training forward took the answer-only path
    train_loss = trained.loss
    model.eval()
    with torch.no_grad():
        assert torch.allclose(train_loss.detach(), model(**batch, **extra).loss, atol=1e-6)


# -- generation and saving -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tiny", "tiny_whisper"])
def test_batched_greedy_equals_one_by_one(fixture, request):
    model, processor = request.getfixturevalue(fixture)
    clips = [make_audio(s, seed=i, frequency=150 + 60 * i) for i, s in enumerate([0.7, 2.6, 1.4])]
    instructions = ["transcribe", "what is it about?", "translate it"]
    conversations = [
        [{"role": "user", "content": [{"type": "audio", "audio": c}, {"type": "text", "text": t}]}]
        for c, t in zip(clips, instructions)
    ]
    batched = greedy(model, processor.apply_chat_template(conversations, sampling_rate=16000))
    singles = [greedy(model, processor.apply_chat_template(c, sampling_rate=16000))[0] for c in conversations]
    assert [row.tolist() for row in batched] == [row.tolist() for row in singles]
    assert len({tuple(row.tolist()) for row in singles}) > 1  # different audio gives different output


def test_save_and_load_give_bit_identical_logits(tiny, tmp_path):
    model, processor = tiny
    batch = processor(text=["x " + processor.audio_token], audio=[make_audio(1.2)], sampling_rate=16000)
    model.save_pretrained(tmp_path)
    reloaded = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, reloaded(**batch).logits)
    assert (tmp_path / "model.safetensors").exists()
    assert not any(p.requires_grad for p in reloaded.audio_tower.parameters())  # the encoder stays frozen


def test_lora_targets_only_the_language_model_and_survives_save_merge(tiny, tmp_path):
    model = copy.deepcopy(tiny[0])
    processor = tiny[1]
    model.enable_lora()
    lora_names = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_names and all(n.startswith("language_model.") for n in lora_names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora_names} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("audio_tower.") for n in trainable)
    with torch.no_grad():  # make the adapters do something
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    batch = processor(text=["x " + processor.audio_token], audio=[make_audio(1.2)], sampling_rate=16000)
    with torch.no_grad():
        with_lora = model(**batch).logits
        base = tiny[0](**batch).logits
    assert not torch.allclose(with_lora, base, atol=1e-3)
    model.save_pretrained(tmp_path)
    reloaded = SpeechLLMForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, with_lora)
        assert greedy(reloaded, batch).tolist() == greedy(model, batch).tolist()
        reloaded.merge_lora()
        assert not any("lora_" in n for n, _ in reloaded.named_parameters())
        assert torch.allclose(reloaded(**batch).logits, with_lora, atol=1e-4)


def save_parts(model, tokenizer, tmp_path):
    """The two parts (tmp_path/encoder, tmp_path/llm); the full SeamlessM4T-v2 model whose encoder they hold."""
    from transformers import SeamlessM4Tv2Model

    from scripts.make_tiny_checkpoint import save_parts as save_tiny_parts

    save_tiny_parts(model, tokenizer, tmp_path)
    return SeamlessM4Tv2Model.from_pretrained(tmp_path / "encoder")


TINY_MAPPER = dict(encoder_layer=2, mapper_widths=[32, 40], mapper_ffn_dim=64, mapper_heads=4, mapper_layers_per_block=1)


def test_from_pretrained_parts_loads_the_encoder_and_llm_weights(tiny, tmp_path):
    model, processor = tiny
    encoder_full = save_parts(model, processor.tokenizer, tmp_path)
    composed = SpeechLLMForConditionalGeneration.from_pretrained_parts(
        str(tmp_path / "encoder"), str(tmp_path / "llm"), audio_token_id=model.config.audio_token_id, **TINY_MAPPER
    )
    reference = encoder_full.speech_encoder.state_dict()
    for key, value in composed.audio_tower.encoder.state_dict().items():
        assert torch.equal(value, reference[key]), key
    for key, value in composed.language_model.state_dict().items():
        assert torch.equal(value, model.language_model.state_dict()[key]), key
    assert not any(p.is_meta for p in composed.parameters())
    assert composed.multi_modal_projector.output_projection.weight.std() > 0


def test_build_from_parts_adds_tokens_or_reuses_reserved_ones(tiny, tmp_path):
    from scripts.build_from_parts import build_from_parts
    from transformers import AutoTokenizer

    model, processor = tiny
    save_parts(model, processor.tokenizer, tmp_path)
    built, built_processor = build_from_parts(str(tmp_path / "encoder"), str(tmp_path / "llm"), **TINY_MAPPER)
    vocab = len(processor.tokenizer)
    # the tiny tokenizer already has <|audio|> (kept, id unchanged); <|speech_pad|> is new: one embedding row more
    assert built.config.audio_token_id == processor.audio_token_id and built.config.mapper_pad_token_id == vocab
    assert built.get_input_embeddings().num_embeddings == vocab + 1
    batch = built_processor(text=built_processor.audio_token, audio=make_audio(1.0), sampling_rate=16000)
    assert built(**batch).logits.shape[-1] == vocab + 1

    # an LLM with Llama-3-style reserved tokens keeps its vocabulary: they are reused
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "llm")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|reserved_special_token_0|>", "<|reserved_special_token_1|>"]})
    model.language_model.resize_token_embeddings(len(tokenizer))
    try:
        save_parts(model, tokenizer, tmp_path / "reserved")
    finally:
        model.language_model.resize_token_embeddings(vocab)
    built, built_processor = build_from_parts(str(tmp_path / "reserved" / "encoder"), str(tmp_path / "reserved" / "llm"), **TINY_MAPPER)
    assert built.config.audio_token == "<|reserved_special_token_0|>"
    assert built.config.audio_token_id == vocab and built.config.mapper_pad_token_id == vocab + 1
    assert len(built_processor.tokenizer) == vocab + 2 == built.get_input_embeddings().num_embeddings

    # with the 2026 loss the CTC head spans the same (grown) vocabulary
    built, _ = build_from_parts(str(tmp_path / "encoder"), str(tmp_path / "llm"), stage_a_loss="l1_cosine_contrastive_ctc", **TINY_MAPPER)
    assert built.ctc_head.out_features == built.config.text_config.vocab_size == vocab + 1


def test_text_only_batches_still_run_the_speech_modules_under_distributed_training(tiny, monkeypatch):
    model = copy.deepcopy(tiny[0]).train()
    processor = tiny[1]
    batch = processor.apply_chat_template([{"role": "user", "content": "the fox"}], targets="der fuchs")
    plain = model(**batch).loss
    monkeypatch.setattr(type(model), "speech_modules_must_run", lambda self: True)
    synced = model(**batch).loss
    synced.backward()
    assert torch.equal(plain, synced)  # the speech pass adds exactly zero
    grad = model.multi_modal_projector.output_projection.weight.grad
    assert grad is not None and torch.count_nonzero(grad) == 0  # took part in the step, changed nothing


def test_mse_adds_up_like_the_ce_across_devices(tiny):
    model, processor = tiny
    sigma_model = copy.deepcopy(model)
    sigma_model.config.loss_sigma = 0.9
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": make_audio(2.0)}, {"type": "text", "text": "say it"}]}]
    batch = processor.apply_chat_template(conversation, targets="the fox", sampling_rate=16000)
    transcript_ids = torch.tensor([processor.tokenizer("the fox", add_special_tokens=False)["input_ids"]])
    n_items = int((batch["labels"][:, 1:] != -100).sum())
    with torch.no_grad():
        alone = sigma_model(**batch, transcript_ids=transcript_ids)
        # as one of two devices with equal token counts: each device's loss is half, the Trainer scales by 2
        shared = sigma_model(**batch, transcript_ids=transcript_ids, num_items_in_batch=torch.tensor(2 * n_items))
    assert torch.allclose(2 * shared.loss, alone.loss, atol=1e-5)


def test_spec_augment_masks_valid_frames_and_channels_while_training_only(tiny):
    from modeling_speechllm import spec_augment

    model, _ = tiny
    config = copy.deepcopy(model.config)
    config.mask_time_prob, config.mask_time_length, config.mask_feature_prob, config.mask_feature_length = 0.3, 2, 0.2, 2
    frames, lengths = torch.ones(3, 40, 16), torch.tensor([40, 20, 10])
    np.random.seed(0)
    masked = spec_augment(frames, lengths, config)
    np.random.seed(0)
    assert torch.equal(masked, spec_augment(frames, lengths, config))  # numpy's RNG decides, as the Trainer seeds it
    zero_frames = (masked == 0).all(-1)
    zero_channels = (masked == 0).all(1)
    assert zero_frames.any() and zero_channels.any()
    assert not zero_frames[1, 20:].any() and not zero_frames[2, 10:].any()  # time masks stay inside the valid frames
    # whole frames and whole channels, nothing else
    assert torch.equal(masked == 0, zero_frames[:, :, None] | zero_channels[:, None, :])

    mapper = copy.deepcopy(model.multi_modal_projector)
    mapper.config = config
    for module in mapper.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    inputs = torch.randn(2, 40, config.encoder_hidden_size), torch.tensor([40, 32])
    plain = copy.deepcopy(mapper)
    plain.config = copy.deepcopy(model.config)
    with torch.no_grad():
        assert torch.equal(mapper.eval()(*inputs).embeddings, plain.eval()(*inputs).embeddings)  # off at inference
        assert not torch.equal(mapper.train()(*inputs).embeddings, plain.train()(*inputs).embeddings)


def test_a_checkpoint_loaded_in_bfloat16_reads_the_processors_float32_features(tiny_checkpoint):
    """from_pretrained(dtype=torch.bfloat16), as transformers users load a model to halve its memory (and, on CPUs with
    AVX-512 bf16 or AMX, to decode ~1.8x faster): the encoder takes the float32 features in its own dtype."""
    from processing_speechllm import SpeechLLMProcessor

    processor = SpeechLLMProcessor.from_pretrained(tiny_checkpoint)
    full = SpeechLLMForConditionalGeneration.from_pretrained(tiny_checkpoint).eval()
    half = SpeechLLMForConditionalGeneration.from_pretrained(tiny_checkpoint, dtype=torch.bfloat16).eval()
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    batch = processor(text=processor.audio_token, audio=make_audio(1.5), sampling_rate=16000)
    assert batch["input_features"].dtype == torch.float32
    with torch.no_grad():
        expected, got = full(**batch).logits, half(**batch).logits
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    assert torch.allclose(got.float(), expected, atol=0.15, rtol=0.05), (got.float() - expected).abs().max()
    assert greedy(half, batch, max_new_tokens=4).shape == (1, 4)
