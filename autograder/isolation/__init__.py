"""The confinement of submissions: the layers the kernel allows (layers), the warm worker (worker), the
supervision of one child (supervise), preparing a run (probe), and the child's runtime (runtime/: copied into
the runtime folder the child imports from; the grader's process imports only its codec).

The pipeline's part of it::

    runtime = prepare(workdir, hidden, device, want=LAYERS, jobs=1)   # the worker and its isolation
    runtime.worker.warm(seed)
    result = run(runtime, sandbox, chunks, steps, Limits(), job, expected)   # RunResult: StepOutcome by step
    runtime.close()
"""
from .layers import LAYERS, Isolation, Runtime
from .probe import prepare
from .runtime.codec import RecordError
from .supervise import DID_NOT_RUN, Limits, RunResult, StepOutcome, Stopped, run
from .worker import WorkerError

__all__ = ["DID_NOT_RUN", "LAYERS", "Isolation", "Limits", "RecordError", "RunResult", "Runtime", "StepOutcome",
           "Stopped", "WorkerError", "prepare", "run"]
