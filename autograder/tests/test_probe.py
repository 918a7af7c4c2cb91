"""How a grading run picks its isolation: the probe child, and what is given up when it fails."""
from __future__ import annotations

import pytest
import torch

from autograder.isolation import LAYERS, probe


def _fake_probe(fails, tried):
    """A probe whose child cannot start while ``fails(layers)`` says so."""
    def fake(runtime, workdir):
        layers = list(runtime.isolation.layers)
        tried.append(layers)
        return fails(layers)
    return fake


def test_cuda_failing_in_a_confined_child_keeps_the_isolation_and_evaluates_on_the_cpu(tmp_path, monkeypatch):
    # what a lent H200 showed (docs/results.md): CUDA starts under every layer but Landlock; the run keeps
    # every layer (Landlock hides the labels) and evaluates the weights on the CPU, saying so
    tried = []
    cuda_error = "exit code 3; last output: CUDA did not start: RuntimeError: Error 304: OS call failed"

    def probe_(runtime, workdir):
        tried.append((list(runtime.isolation.layers), runtime.device))
        return (cuda_error, True) if runtime.device == "cuda" and "landlock" in runtime.isolation.layers else ("", False)
    monkeypatch.setattr(probe, "unavailable", lambda want: {})
    monkeypatch.setattr(probe, "_probe", probe_)
    runtime = probe.prepare(tmp_path / "work", device="cuda")
    everything = [*LAYERS[:4], "rlimits"]
    assert tried == [(everything, "cuda"), (everything, "cpu")]
    assert runtime.isolation.layers == everything and runtime.isolation.missing == {}
    assert runtime.device == "cpu"
    assert runtime.note.startswith("the weights are evaluated on the CPU: CUDA does not start in a child confined so "
                                   f"({cuda_error})")


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
def test_a_real_probe_child_that_cannot_start_cuda_turns_the_run_to_the_cpu(tmp_path):
    # the real worker and child, rlimits only: the child's CUDA start is what fails, and the run says so
    runtime = probe.prepare(tmp_path / "work", device="cuda", want=())
    try:
        assert runtime.device == "cpu" and runtime.isolation.layers == ["rlimits"]
        assert "exit code 3; last output: CUDA did not start: " in runtime.note
    finally:
        runtime.close()
