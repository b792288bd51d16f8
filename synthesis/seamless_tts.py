"""SeamlessM4T-v2's own text-to-speech (transformers' SeamlessM4Tv2ForTextToSpeech), the voice the IWSLT 2026 paper
spoke fakACL with: English text → its text decoder → text-to-unit model → the unit vocoder, at 16 kHz, in one of the
vocoder's speakers (a Voice named by its speaker id).

    python -m synthesis.build_dataset --version v2-seamless --seamless_tts facebook/seamless-m4t-v2-large ...

The checkpoint is chosen by configuration (--seamless_tts: a Hub id or a local directory, e.g. a tiny random one from
scripts/make_tiny_checkpoint.py --tts); it is loaded once, when the first clip is spoken.
"""

import numpy as np
import torch

DEFAULT_MODEL = "facebook/seamless-m4t-v2-large"
LANGUAGE = "eng"
# The text decoder re-writes the input before speaking it: room for that, in tokens, beyond the input's own.
EXTRA_TEXT_TOKENS = 16


class SeamlessTTSEngine:
    def __init__(self, model_name_or_path: str = DEFAULT_MODEL):
        from transformers import AutoProcessor, SeamlessM4Tv2ForTextToSpeech

        self.processor = AutoProcessor.from_pretrained(model_name_or_path)
        self.model = SeamlessM4Tv2ForTextToSpeech.from_pretrained(model_name_or_path).eval()

    @property
    def speakers(self) -> int:
        return self.model.config.vocoder_num_spkrs

    def speak(self, text: str, voice) -> tuple[np.ndarray, int]:
        speaker = int(voice.name)
        if not 0 <= speaker < self.speakers:
            raise ValueError(f"{voice.key}: the vocoder has speakers 0..{self.speakers - 1}")
        inputs = self.processor(text=text, src_lang=LANGUAGE, return_tensors="pt")
        budget = inputs["input_ids"].shape[1] * 2 + EXTRA_TEXT_TOKENS
        with torch.no_grad():
            waveform, lengths = self.model.generate(**inputs, tgt_lang=LANGUAGE, speaker_id=speaker, max_new_tokens=budget)
        return waveform[0, : int(lengths.reshape(-1)[0])].float().numpy(), self.model.config.sampling_rate
