"""DeepSpeed ZeRO-3 and model construction.

Under ZeRO-3, transformers builds every model created through `from_config`/`from_pretrained` inside
`deepspeed.zero.Init`, which partitions each parameter as it is created. That is wrong for what speechllm builds
before training: a meta-device LLM only asked for a parameter name (zero.Init cannot copy out of meta tensors), and
models into which other checkpoints' tensors are then loaded (they need whole tensors). `deepspeed.initialize`
partitions the trainable model afterwards anyway.
"""

from contextlib import contextmanager


@contextmanager
def whole_tensors_while_building():
    """Build models with whole tensors even while a ZeRO-3 Trainer is configured (each process then holds the model
    once in CPU memory until DeepSpeed partitions it)."""
    from transformers.integrations import deepspeed as hf_deepspeed

    reference = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = reference
