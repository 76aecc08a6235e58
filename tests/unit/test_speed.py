"""Decode speed: bytes read per token, bandwidth × efficiency, calibration from measured runs."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from app.fit_memory import kv_layer_bytes
from app.fit_types import GIB, FitRequest
from app.hardware import AppleSilicon, CPUInfo, HardwareProfile, MemoryBandwidth, MemoryInfo, OSInfo
from app.speed import (
    ASSUMED_DRAM_BANDWIDTH,
    DEFAULT_EFFICIENCY,
    PROMPT_TO_DECODE,
    Calibration,
    bytes_per_token,
    estimate_speed,
)
from tests.unit.test_fit_memory import make_shape

MB = 1_000_000


def m3_max(bandwidth: int = 400_000_000_000) -> HardwareProfile:
    apple = AppleSilicon("Apple M3 Max", 12, 4, 40, 64 * GIB, 48 * GIB, "metal", 0)
    return HardwareProfile(
        OSInfo("macOS", "15.1", "arm64"),
        CPUInfo("Apple M3 Max", 16, 12, 4, 16, ("NEON",)),
        MemoryInfo(64 * GIB, 56 * GIB, 0, 0),
        apple=apple,
        bandwidth=(MemoryBandwidth("apple-gpu", bandwidth, "Apple spec"),),
    )


def test_dense_model_reads_every_layer_kv_in_use_and_the_output() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=4096)
    gpu, host = bytes_per_token(shape, 4096, request, 5)
    kv = kv_layer_bytes(shape, 2048, request)  # a chat turn: 2048 tokens in context
    assert (gpu, host) == (sum(shape.layer_bytes) + sum(kv) + shape.output_bytes, 0)


def test_kv_read_is_the_used_share_of_padded_cells() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=1000)
    _, host = bytes_per_token(shape, 1000, request, 0)
    per_layer_kv = 1024 * 512 * 1000 // 1024  # 1000 of 1024 cells in use
    assert host == sum(shape.layer_bytes) + 4 * per_layer_kv + shape.output_bytes


def test_moe_reads_only_the_routed_share_of_expert_weights() -> None:
    dense = make_shape()
    moe = dataclasses.replace(
        dense, expert_count=8, expert_used_count=2, layer_expert_bytes=(8 * MB,) * 4
    )
    request = FitRequest(n_ctx=4096)
    dense_gpu, _ = bytes_per_token(dense, 4096, request, 5)
    moe_gpu, _ = bytes_per_token(moe, 4096, request, 5)
    assert dense_gpu - moe_gpu == 4 * (8 * MB - 2 * MB)  # 6 of 8 experts unread per layer


def test_partial_offload_splits_reads_between_gpu_and_host() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=256)
    kv = kv_layer_bytes(shape, 256, request)
    gpu, host = bytes_per_token(shape, 256, request, 3)
    assert gpu == sum(shape.layer_bytes[1:]) + sum(kv[1:])
    assert host == shape.layer_bytes[0] + kv[0] + shape.output_bytes


def test_estimated_speed_is_bandwidth_times_efficiency_over_bytes() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=4096)
    gpu, _ = bytes_per_token(shape, 4096, request, 5)
    speed = estimate_speed(shape, 4096, request, 5, "Metal", m3_max())
    expected = 400e9 * DEFAULT_EFFICIENCY["Metal"] / gpu
    assert speed.basis == "estimated"
    assert speed.decode_tokens_per_second == pytest.approx(expected, rel=1e-12)
    assert speed.prompt_tokens_per_second == pytest.approx(expected * PROMPT_TO_DECODE["Metal"])
    assert "GPU 400 GB/s × 0.60" in speed.detail


def test_cpu_speed_uses_assumed_dram_bandwidth_when_unknown() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=4096)
    _, host = bytes_per_token(shape, 4096, request, 0)
    profile = HardwareProfile(
        OSInfo("Linux", "6.8", "x86_64"), CPUInfo("x", 2, 2, 0, 2), MemoryInfo(GIB, GIB, 0, 0)
    )
    speed = estimate_speed(shape, 4096, request, 0, "CPU", profile)
    expected = ASSUMED_DRAM_BANDWIDTH * DEFAULT_EFFICIENCY["CPU"] / host
    assert speed.decode_tokens_per_second == pytest.approx(expected, rel=1e-12)
    assert "RAM 40 GB/s (assumed)" in speed.detail


def test_calibrated_speed_uses_the_median_effective_bandwidth_of_runs() -> None:
    shape = make_shape()
    request = FitRequest(n_ctx=4096)
    gpu, host = bytes_per_token(shape, 4096, request, 5)
    runs = [100e9, 300e9, 200e9]
    calibration = Calibration(effective_bandwidth={"Metal": runs})
    speed = estimate_speed(shape, 4096, request, 5, "Metal", m3_max(), calibration)
    assert speed.decode_tokens_per_second == pytest.approx(200e9 / (gpu + host), rel=1e-12)
    assert speed.detail == "calibrated from 3 runs here"
    assert speed.basis == "estimated"


def test_a_file_with_its_own_runs_shows_measured_speed() -> None:
    calibration = Calibration(file_speeds={"m.gguf|123": (42.5, 900.0)})
    speed = estimate_speed(
        make_shape(), 4096, FitRequest(), 5, "Metal", m3_max(), calibration, "m.gguf|123"
    )
    assert (speed.basis, speed.decode_tokens_per_second, speed.prompt_tokens_per_second) == (
        "measured",
        42.5,
        900.0,
    )
    other = estimate_speed(
        make_shape(), 4096, FitRequest(), 5, "Metal", m3_max(), calibration, "x.gguf|1"
    )
    assert other.basis == "estimated"


def test_prompt_speed_comes_from_calibrated_flops_over_two_flops_per_parameter() -> None:
    shape = make_shape()  # 1,000,000 parameters
    flops = [2e12, 4e12, 9e12]
    calibration = Calibration(prompt_flops={"CPU": flops})
    speed = estimate_speed(shape, 4096, FitRequest(), 0, "CPU", None, calibration)
    assert speed.prompt_tokens_per_second == statistics.median(flops) / (2 * 1_000_000)
    assert speed.prompt_tokens_per_second == 2_000_000.0
