"""The per-thread workspace memory that calls reuse, and the layers that rely on it."""

import importlib
import threading

import numpy as np
import pytest
from conftest import tie_free

import fastconv
from fastconv import nn
from fastconv._scratch import ALIGNMENT, Scratch

scratch_module = importlib.import_module("fastconv._scratch")


def address(array):
    return array.__array_interface__["data"][0]


@pytest.fixture
def empty_scratch(monkeypatch):
    """This thread's scratch as at its first call."""
    monkeypatch.setattr(scratch_module, "_kept", scratch_module._Kept())


def test_scratch_is_reused_aligned_and_never_overlaps_within_a_call(empty_scratch):
    shapes = [((3, 5), np.float32), ((7,), np.int64), ((2, 3, 4), np.float64)]
    calls = []
    for _ in range(3):
        with Scratch() as scratch:
            calls.append([scratch.empty("workspace", shape, dtype) for shape, dtype in shapes])
    # The first call finds no scratch; it is then kept for the next ones.
    assert not any(np.shares_memory(a, scratch_module._kept.buffer) for a in calls[0])
    for a, b in zip(calls[1], calls[2], strict=True):
        assert address(a) % ALIGNMENT == 0
        assert np.shares_memory(a, scratch_module._kept.buffer)
        assert address(a) == address(b)
    for i, a in enumerate(calls[2]):
        for b in calls[2][i + 1:]:
            assert not np.shares_memory(a, b)


def test_a_nested_call_gets_memory_of_its_own(empty_scratch):
    with Scratch() as outer:
        outer.empty("workspace", (64,), np.float64)
    with Scratch() as outer:
        kept = outer.empty("workspace", (64,), np.float64)
        kept[:] = 1.0
        with Scratch() as inner:
            inner.empty("workspace", (64,), np.float64)[:] = 2.0
        np.testing.assert_array_equal(kept, 1.0)
    with Scratch() as outer:
        reused = outer.empty("workspace", (64,), np.float64)
    assert address(reused) == address(kept)


def test_threads_do_not_share_their_scratch():
    addresses = {}
    barrier = threading.Barrier(2)

    def take(name):
        with Scratch() as scratch:
            array = scratch.empty("workspace", (1000,), np.float64)
            barrier.wait()   # both threads hold their workspace at once
            addresses[name] = (address(array), address(array) + array.nbytes)
            barrier.wait()

    threads = [threading.Thread(target=take, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (a0, a1), (b0, b1) = addresses["a"], addresses["b"]
    assert a1 <= b0 or b1 <= a0


def test_calls_larger_than_the_limit_are_not_kept(empty_scratch, monkeypatch):
    monkeypatch.setattr(scratch_module, "LIMIT_BYTES", 4096)
    for _ in range(2):
        with Scratch() as scratch:
            scratch.empty("workspace", (1024,), np.float64)
    assert scratch_module._kept.buffer.nbytes == 0
    with Scratch() as scratch:
        scratch.empty("workspace", (256,), np.float32)
    assert 1024 <= scratch_module._kept.buffer.nbytes <= 4096


def test_scratch_names_an_impossible_workspace():
    with Scratch() as scratch, pytest.raises(ValueError, match="workspace"):
        scratch.empty("workspace", (2**40, 2**40), np.float32)


@pytest.mark.parametrize("e", [2, 4])
def test_pool_skip_layers_keep_their_maxima_out_of_the_scratch(e, rng):
    """Two blocks in a row: the second's calls reuse the scratch between the first's
    forward and backward, and the first's gradients must not see it."""
    x = tie_free(rng, (2, 6, 9, 10), np.float64)
    first, second = (nn.PoolSkip(6, e, dtype=np.float64, rng=seed) for seed in (1, 2))
    gy = rng.standard_normal(x.shape)
    hidden = first.forward(x)
    second.forward(hidden)
    first.zero_grad()
    grad_hidden = second.backward(gy)
    grad_x = first.backward(grad_hidden)
    expected = fastconv.pool_skip_backward(grad_hidden, x, first.weight.data, e)
    np.testing.assert_array_equal(grad_x, expected[0])
    np.testing.assert_array_equal(first.weight.grad, expected[1])
