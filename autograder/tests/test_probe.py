"""How a grading run picks its isolation: the probe child, and what is given up when it fails."""
from __future__ import annotations

import pytest
import torch

from autograder.isolation import LAYERS, probe


def _fake_probe(fails, tried):
    """A probe that fails (with CUDA's answer or a start failure) while ``fails(layers)`` says so."""
    def fake(runtime, workdir):
        layers = list(runtime.isolation.layers)
        tried.append(layers)
        return fails(layers)
    return fake


def test_cuda_failing_under_landlock_gives_up_landlock_alone(tmp_path, monkeypatch):
    # what a lent H200 showed (docs/results.md): CUDA starts under every layer but Landlock
    tried = []
    cuda_error = "exit code 3; last output: CUDA did not start: RuntimeError: Error 304: OS call failed"
    monkeypatch.setattr(probe, "unavailable", lambda want: {})
    monkeypatch.setattr(probe, "_probe", _fake_probe(
        lambda layers: (cuda_error, True) if "landlock" in layers else ("", False), tried))
    runtime = probe.prepare(tmp_path / "work", device="cuda")
    everything = [*LAYERS[:4], "rlimits"]
    assert tried == [everything, [layer for layer in everything if layer != "landlock"]]
    assert runtime.isolation.layers == ["namespaces", "seccomp", "unprivileged-user", "rlimits"]
    assert runtime.isolation.missing == {"landlock": f"the probe child failed with it: {cuda_error}"}


def test_a_child_that_cannot_start_gives_up_layers_in_the_fixed_order(tmp_path, monkeypatch):
    tried = []
    monkeypatch.setattr(probe, "unavailable", lambda want: {})
    # starts only once both namespaces and unprivileged-user are gone (the order: namespaces first)
    monkeypatch.setattr(probe, "_probe", _fake_probe(
        lambda layers: ("WorkerError: no start", False) if {"namespaces", "unprivileged-user"} & set(layers)
        else ("", False), tried))
    runtime = probe.prepare(tmp_path / "work", device="cpu")
    assert [len(t) for t in tried] == [5, 4, 3]
    assert runtime.isolation.layers == ["landlock", "seccomp", "rlimits"]
    assert list(runtime.isolation.missing) == ["namespaces", "unprivileged-user"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where CUDA cannot start")
def test_a_real_probe_child_reports_that_cuda_does_not_start(tmp_path):
    # the real worker and child, rlimits only: the child's CUDA start is what fails, and the run says so
    with pytest.raises(RuntimeError) as raised:
        probe.prepare(tmp_path / "work", device="cuda", want=())
    message = str(raised.value)
    assert message.startswith("CUDA does not start in a grading child even with rlimits only: exit code 3")
    assert "CUDA did not start: " in message
