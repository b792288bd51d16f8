"""vLLM's entry into speechllm (`[project.entry-points."vllm.general_plugins"]` in pyproject.toml).

vLLM calls `register()` in every process it starts (the API server, the engine core, each worker), which a
registration from a user's script would not reach. The model class is named by a string so that nothing of vLLM's
model code is imported before vLLM asks for it.
"""

ARCHITECTURE = "SpeechLLMForConditionalGeneration"


def register():
    from transformers import AutoConfig
    from vllm import ModelRegistry

    from configuration_speechllm import SpeechLLMConfig

    # The config is ours, not remote code: an exported checkpoint serves without --trust-remote-code.
    AutoConfig.register(SpeechLLMConfig.model_type, SpeechLLMConfig, exist_ok=True)
    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, "serving.vllm_model:SpeechLLMForVLLM")
