"""Decoding held to what the mapper heard: the CTC head's prefix score joined to the LLM's beam, and word times.

Hybrid CTC/attention decoders (Watanabe et al., 2017; ESPnet) score each candidate prefix h by
`(1 − λ)·log p_LLM(h) + λ·log p_CTC(h…)`, where p_CTC(h…) is the probability that the CTC reading of the audio
*starts with* h (the prefix score). Here that score is a transformers `LogitsProcessor`: at each step, for each
beam row, the LLM's `candidates` best next tokens get `(1 − λ)·log p_LLM(c | h) + λ·(ψ(h + c) − ψ(h))` and every
other token −inf, so the beam's running sum is exactly the joint score (the differences telescope). It works
under greedy search and beam search alike, and λ = 0 is never routed through it (plain `generate`).

The CTC head reads mapper block 1 in the LLM's own tokens (modeling_speechllm.EmbeddingCTCHead), so no token
mapping is needed. The same log-probabilities give each word its time span and a confidence by forced alignment
(`word_alignments`).
"""

import math

import torch
from transformers import LogitsProcessor

NEG_INF = float("-inf")


class CTCPrefixScorer:
    """CTC prefix scores of one clip's frame log-probabilities (T, V), blank at `blank_id`.

    A state is (r_n, r_b, last token, ψ): r_n[t] / r_b[t] the log-probability of the frames 0..t having emitted the
    prefix and ending in a non-blank / blank frame, ψ the prefix score of the prefix itself."""

    def __init__(self, log_probs: torch.Tensor, blank_id: int):
        self.log_probs = log_probs.float()
        self.blank_id = blank_id
        self.num_frames = log_probs.shape[0]

    def initial_state(self):
        r_n = torch.full((self.num_frames,), NEG_INF)
        r_b = torch.cumsum(self.log_probs[:, self.blank_id], 0)
        return r_n, r_b, None, 0.0

    def extend(self, state, tokens: list[int]) -> tuple[torch.Tensor, list]:
        """ψ(prefix + c) for each c of `tokens` (a 1-D tensor of scores) and the new states, computed together."""
        r_n_prev, r_b_prev, last, _ = state
        count, frames = len(tokens), self.num_frames
        token_ids = torch.tensor(tokens, dtype=torch.long)
        emit = self.log_probs[:, token_ids]  # (T, K)
        blank = self.log_probs[:, self.blank_id][:, None]
        prefix_total = torch.logaddexp(r_n_prev, r_b_prev)[:, None].expand(frames, count)
        # A repeated token needs a blank between: only the paths ending in blank can emit it again.
        repeat = (token_ids == last)[None, :] if last is not None else torch.zeros(1, count, dtype=torch.bool)
        phi = torch.where(repeat, r_b_prev[:, None].expand(frames, count), prefix_total)
        r_n = torch.full((frames, count), NEG_INF)
        r_b = torch.full((frames, count), NEG_INF)
        if last is None:  # the empty prefix: the first token may start at frame 0
            r_n[0] = emit[0]
        for t in range(1, frames):
            r_n[t] = torch.logaddexp(r_n[t - 1], phi[t - 1]) + emit[t]
            r_b[t] = torch.logaddexp(r_b[t - 1], r_n[t - 1]) + blank[t]
        # ψ: the token is first emitted at some frame t, after the prefix was complete at t − 1.
        starts = phi[:-1] + emit[1:]
        first = emit[0] if last is None else torch.full((count,), NEG_INF)
        psi = torch.logsumexp(torch.cat([first[None], starts]), 0) if frames > 1 else first
        states = [(r_n[:, k], r_b[:, k], int(token_ids[k]), float(psi[k])) for k in range(count)]
        return psi, states

    @staticmethod
    def final_score(state) -> float:
        """log p_CTC(prefix) as the whole reading: the prefix complete at the last frame."""
        r_n, r_b, _, _ = state
        return float(torch.logaddexp(r_n[-1], r_b[-1]))


class CTCPrefixLogitsProcessor(LogitsProcessor):
    """Joint CTC/LLM scoring for `generate` (greedy or beam search), one scorer per clip.

    Rows of `input_ids` are clip-major (`num_beams` rows per clip, as `generate` expands them); a row's state is
    found by its generated tokens, so beam reordering needs no bookkeeping. `candidates` LLM tokens per row are
    rescored (the LLM's best few: the CTC score of all 150K would cost a vocabulary's worth of frame loops)."""

    def __init__(self, log_probs: list[torch.Tensor], blank_id: int, eos_token_ids, prompt_length: int, num_beams: int,
                 weight: float, candidates: int = 8):
        if not 0 < weight <= 1:
            raise ValueError(f"ctc_weight must be in (0, 1], got {weight}")
        self.scorers = [CTCPrefixScorer(clip, blank_id) for clip in log_probs]
        self.blank_id = blank_id
        self.eos_token_ids = set(eos_token_ids)
        self.prompt_length = prompt_length
        self.num_beams = num_beams
        self.weight = weight
        self.candidates = candidates
        self.states = [{(): scorer.initial_state()} for scorer in self.scorers]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        log_probs = scores.float().log_softmax(-1)
        joint = torch.full_like(log_probs, NEG_INF)
        readable = log_probs.clone()
        readable[:, self.blank_id] = NEG_INF  # CTC's blank (the mapper's pad token) is never a word of the reading
        top = readable.topk(min(self.candidates, log_probs.shape[-1] - 1), dim=-1).indices
        for row in range(input_ids.shape[0]):
            clip = row // self.num_beams
            prefix = tuple(input_ids[row, self.prompt_length :].tolist())
            state = self.states[clip].get(prefix)
            if state is None:  # a finished beam's padding, or a prefix never scored: leave the LLM's choice alone
                joint[row] = log_probs[row]
                continue
            tokens = [int(t) for t in top[row]]
            ctc_gain = self.candidate_gains(clip, prefix, state, tokens)
            joint[row, tokens] = (1 - self.weight) * log_probs[row, tokens] + self.weight * ctc_gain
        return joint.to(scores.dtype)

    def candidate_gains(self, clip: int, prefix: tuple, state, tokens: list[int]) -> torch.Tensor:
        """ψ(prefix + c) − ψ(prefix) for each candidate; an end token gets the whole reading's score instead."""
        scorer, previous = self.scorers[clip], state[3]
        gains = torch.empty(len(tokens))
        words = [i for i, t in enumerate(tokens) if t not in self.eos_token_ids]
        if words:
            psi, states = scorer.extend(state, [tokens[i] for i in words])
            for i, new_state, score in zip(words, states, psi.tolist()):
                gains[i] = score - previous
                self.states[clip][prefix + (tokens[i],)] = new_state
        for i, token in enumerate(tokens):
            if token in self.eos_token_ids:
                gains[i] = scorer.final_score(state) - previous
        return gains


def ctc_frame_seconds(config, feature_extractor) -> float:
    """Seconds per CTC frame (mapper block 1): the feature hop × the encoder's stride × averaging × block 1's stride."""
    hop = getattr(feature_extractor, "hop_length", 160) / feature_extractor.sampling_rate
    return hop * config.encoder_feature_stride * config.frame_average * config.mapper_strides[0]


def forced_alignment(log_probs: torch.Tensor, tokens: list[int], blank_id: int) -> list[tuple[int, int, float]]:
    """The most likely CTC path that reads exactly `tokens`: for each token its (first frame, last frame, mean
    posterior over those frames). Viterbi over the usual blank-interleaved states."""
    frames = log_probs.shape[0]
    if not tokens:
        return []
    labels = [blank_id]
    for token in tokens:
        labels += [token, blank_id]
    states = len(labels)
    if frames < len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:])):
        raise ValueError(f"{len(tokens)} tokens cannot be read from {frames} CTC frames")
    emit = log_probs.float()[:, labels]  # (T, S)
    score = torch.full((frames, states), NEG_INF)
    back = torch.zeros((frames, states), dtype=torch.long)
    score[0, 0], score[0, 1] = emit[0, 0], emit[0, 1]
    label_tensor = torch.tensor(labels)
    can_skip = torch.zeros(states, dtype=torch.bool)
    can_skip[2:] = (label_tensor[2:] != blank_id) & (label_tensor[2:] != label_tensor[:-2])
    for t in range(1, frames):
        stay = score[t - 1]
        step = torch.cat([torch.tensor([NEG_INF]), score[t - 1, :-1]])
        skip = torch.cat([torch.tensor([NEG_INF, NEG_INF]), score[t - 1, :-2]]).masked_fill(~can_skip, NEG_INF)
        candidates = torch.stack([stay, step, skip])
        best, choice = candidates.max(0)
        score[t] = best + emit[t]
        back[t] = choice
    state = states - 1 if score[-1, -1] >= score[-1, -2] else states - 2
    path = [state]
    for t in range(frames - 1, 0, -1):
        state -= int(back[t, state])
        path.append(state)
    path.reverse()
    posteriors = log_probs.float().exp()
    spans = []
    for index, token in enumerate(tokens):
        label_state = 2 * index + 1
        frames_of = [t for t, s in enumerate(path) if s == label_state]
        confidence = float(posteriors[frames_of, token].mean())
        spans.append((frames_of[0], frames_of[-1], confidence))
    return spans


def word_alignments(log_probs: torch.Tensor, token_ids: list[int], tokenizer, blank_id: int, frame_seconds: float) -> list[dict]:
    """Words of `token_ids` with their start/end seconds and a confidence (the mean of their tokens' posteriors).

    A word starts at a token whose text begins with a space (byte-level BPE's "Ġ"), as the tokenizer decodes it."""
    spans = forced_alignment(log_probs, token_ids, blank_id)
    words = []
    for token, (first, last, confidence) in zip(token_ids, spans):
        piece = tokenizer.decode([token])
        if not words or piece[:1].isspace():
            words.append({"word": piece.strip(), "start": first * frame_seconds, "end": (last + 1) * frame_seconds,
                          "confidences": [confidence]})
        else:
            words[-1]["word"] += piece
            words[-1]["end"] = (last + 1) * frame_seconds
            words[-1]["confidences"].append(confidence)
    result = []
    for word in words:
        if not word["word"]:
            continue
        confidences = word.pop("confidences")
        result.append({**word, "confidence": math.fsum(confidences) / len(confidences)})
    return result
