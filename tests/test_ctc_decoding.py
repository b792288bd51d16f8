"""Joint CTC/LLM decoding (ctc_decoding.py): the prefix score against a brute-force sum over alignments, forced
alignment against brute force, and word times."""

import itertools
import math

import pytest
import torch

from ctc_decoding import CTCPrefixLogitsProcessor, CTCPrefixScorer, forced_alignment, word_alignments

BLANK = 0


def collapse(path):
    out, previous = [], None
    for label in path:
        if label != previous and label != BLANK:
            out.append(label)
        previous = label
    return tuple(out)


def all_paths(log_probs):
    frames, vocab = log_probs.shape
    for path in itertools.product(range(vocab), repeat=frames):
        yield path, float(sum(log_probs[t, label] for t, label in enumerate(path)))


def brute_prefix_probability(log_probs, prefix) -> float:
    """Σ over every alignment whose reading starts with `prefix` of its probability."""
    return sum(math.exp(score) for path, score in all_paths(log_probs) if collapse(path)[: len(prefix)] == tuple(prefix))


def brute_sequence_probability(log_probs, sequence) -> float:
    return sum(math.exp(score) for path, score in all_paths(log_probs) if collapse(path) == tuple(sequence))


@pytest.fixture
def clip_log_probs():
    torch.manual_seed(0)
    return torch.randn(5, 4).log_softmax(-1)  # 5 frames, blank + 3 tokens: 4^5 alignments


@pytest.mark.parametrize("prefix", [(1,), (2,), (1, 1), (1, 2), (2, 1, 3), (3, 3, 3)])
def test_prefix_score_is_the_sum_over_alignments(clip_log_probs, prefix):
    scorer = CTCPrefixScorer(clip_log_probs, BLANK)
    state = scorer.initial_state()
    for token in prefix:
        psi, (state,) = scorer.extend(state, [token])
    assert math.exp(float(psi[0])) == pytest.approx(brute_prefix_probability(clip_log_probs, prefix), rel=1e-5, abs=1e-12)
    assert math.exp(scorer.final_score(state)) == pytest.approx(brute_sequence_probability(clip_log_probs, prefix), rel=1e-5, abs=1e-12)


def test_extending_several_candidates_at_once_equals_one_at_a_time(clip_log_probs):
    scorer = CTCPrefixScorer(clip_log_probs, BLANK)
    _, (state,) = scorer.extend(scorer.initial_state(), [2])
    together, _ = scorer.extend(state, [1, 2, 3])
    alone = torch.cat([scorer.extend(state, [token])[0] for token in (1, 2, 3)])
    torch.testing.assert_close(together, alone)


def test_processor_scores_are_the_joint_score_differences(clip_log_probs):
    """A row's processed scores: (1 − λ)·log p_LLM(c) + λ·(ψ(h + c) − ψ(h)) for the candidates, −inf elsewhere."""
    llm = torch.randn(1, 5)  # vocabulary: blank (unused by the LLM), 3 tokens, and an end token (4)
    ctc = torch.cat([clip_log_probs, torch.full((5, 1), -1e9)], 1).log_softmax(-1)
    processor = CTCPrefixLogitsProcessor([ctc], BLANK, eos_token_ids=[4], prompt_length=2, num_beams=1, weight=0.4, candidates=3)
    input_ids = torch.tensor([[7, 7]])
    scores = processor(input_ids, llm.clone())
    llm_log = llm.log_softmax(-1)[0]
    candidates = llm_log.topk(3).indices.tolist()
    scorer = CTCPrefixScorer(ctc, BLANK)
    for token in range(5):
        if token not in candidates:
            assert scores[0, token] == float("-inf")
        elif token == 4:
            expected = 0.6 * llm_log[4] + 0.4 * scorer.final_score(scorer.initial_state())
            assert float(scores[0, token]) == pytest.approx(float(expected), abs=1e-5)
        else:
            psi, _ = scorer.extend(scorer.initial_state(), [token])
            assert float(scores[0, token]) == pytest.approx(float(0.6 * llm_log[token] + 0.4 * psi[0]), abs=1e-5)


def test_forced_alignment_is_the_best_path(clip_log_probs):
    tokens = [2, 2]
    best_path, best = None, float("-inf")
    for path, score in all_paths(clip_log_probs):
        if collapse(path) == tuple(tokens) and score > best:
            best_path, best = path, score
    spans = forced_alignment(clip_log_probs, tokens, BLANK)
    # the best path's frames of each token: the runs of non-blank labels, in order
    runs, previous = [], BLANK
    for t, label in enumerate(best_path):
        if label != BLANK and (label != previous or not runs):
            runs.append([t, t])
        elif label != BLANK:
            runs[-1][1] = t
        previous = label
    assert [(first, last) for first, last, _ in spans] == [tuple(run) for run in runs]
    assert all(0 < confidence <= 1 for _, _, confidence in spans)


class SpacedTokenizer:
    """Token 1 = " the", 2 = " cat", 3 = "s": a byte-level BPE's leading-space convention."""

    pieces = {1: " the", 2: " cat", 3: "s"}

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


def test_word_times_are_monotonic_and_inside_the_clip():
    torch.manual_seed(1)
    frames = 12
    log_probs = torch.randn(frames, 4).log_softmax(-1)
    words = word_alignments(log_probs, [1, 2, 3], SpacedTokenizer(), BLANK, frame_seconds=0.08)
    assert [w["word"] for w in words] == ["the", "cats"]
    times = [t for w in words for t in (w["start"], w["end"])]
    assert times == sorted(times)
    assert times[0] >= 0 and times[-1] <= frames * 0.08 + 1e-9
    assert all(w["start"] < w["end"] for w in words)
    assert all(0 < w["confidence"] <= 1 for w in words)
