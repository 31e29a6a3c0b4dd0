"""Channel block per provider and CPU."""

from onnxprune.runtime.blocks import GPU_BLOCK, channel_block, cpu_channel_block


def test_cpu_block_follows_the_simd_width():
    assert cpu_channel_block(frozenset({"avx512f", "avx2"}), "x86_64") == 16
    assert cpu_channel_block(frozenset({"avx2"}), "x86_64") == 8
    assert cpu_channel_block(frozenset(), "aarch64") == 4
    assert cpu_channel_block(frozenset(), "x86_64") == 4


def test_gpu_providers_use_tensor_core_multiples():
    assert channel_block("cuda") == channel_block("tensorrt") == GPU_BLOCK == 8
    assert channel_block("cpu") == cpu_channel_block() in (4, 8, 16)
