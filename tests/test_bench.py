"""Bench helpers whose numbers the benchmark ratios rest on."""

import subprocess
import sys

from conftest import ROOT


def test_peak_memory_of_a_bench_part_is_its_own_not_its_parents():
    held = bytearray(800 * 2**20)  # this process (the parent of the part) peaks above 0.8 GiB
    held[:: 4096] = b"x" * len(held[:: 4096])  # touch every page so that it is resident
    code = "from bench.common import peak_rss_gib; print(peak_rss_gib())"
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert float(child.stdout.split()[-1]) < 0.5
    del held


def test_the_1b_bench_shape_is_a_llama_with_the_default_llms_vocabulary(tmp_path):
    """The stage-A cost at a ~1.1B shape keeps only the default LLM's vocabulary: merged into a Qwen2 config (the
    multilingual default's), Qwen's 24 `layer_types` refused the 22 layers and the benchmark stopped."""
    from transformers import Qwen2Config

    from configuration_speechllm import SpeechLLMConfig

    from bench.training_step import LLM_1B, bench_config

    qwen = Qwen2Config(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=24,
                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    SpeechLLMConfig(text_config=qwen).save_pretrained(tmp_path)
    text = bench_config(str(tmp_path), "1b").text_config
    assert (text.model_type, text.num_hidden_layers, text.hidden_size) == ("llama", 22, LLM_1B["hidden_size"])
    assert (text.vocab_size, text.tie_word_embeddings) == (1000, True)
    assert bench_config(str(tmp_path), "default").text_config.num_hidden_layers == 24
