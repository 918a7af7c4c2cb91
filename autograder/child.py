"""The grading child: confines itself, runs a submission's definitions, observes its models and
writes one record per step. It judges nothing and holds nothing of the solution.

    python -I -S child.py JOB EVENTS_FD

The grader copies this file, confine.py and fcnkit into a read-only runtime folder and starts it
there (see autograder.sandbox). Events (one JSON line each: start, begin STEP, end STEP) go to the
pipe EVENTS_FD, records to ``<sandbox>/<step>.rec``. Anything after "start" may have been written
by student code, and the grader reads it as such.
"""
import json
import os
import sys


def main() -> None:
    job_path, events_fd = sys.argv[1], int(sys.argv[2])
    with open(job_path) as f:
        job = json.load(f)
    sys.path[:] = job["sys_path"]
    events = os.fdopen(events_fd, "w", buffering=1)

    def emit(**event) -> None:
        events.write(json.dumps(event) + "\n")

    import confine
    if job["seccomp"]:
        import pyseccomp  # noqa: F401  (now: finding libseccomp runs ldconfig, which Landlock would refuse)
    if not job.get("probe"):
        import numpy  # noqa: F401  (imported before confinement: the library files stay readable anyway)
        import torch
        import torchvision  # noqa: F401
        import fcnkit
        from fcnkit import checks, data, metrics, observe, records, train, vgg, viz
        torch.set_num_threads(job["threads"])
    applied = []
    if job["landlock"]:
        confine.apply_landlock(job["landlock"]["read"], job["landlock"]["write"])
        applied.append("landlock")
    if job["seccomp"]:
        confine.apply_seccomp()
        applied.append("seccomp")
    emit(event="start", layers=applied, uid=os.getuid())
    if job.get("probe"):
        os._exit(0)

    # From here on, student code runs in this process.
    fallback = (fcnkit, vgg, data, metrics, train, viz)
    namespace = {"__name__": "submission"}
    for chunk in job["chunks"]:
        step = f"chunk-{chunk['index']}"
        emit(event="begin", step=step)
        emit(event="end", step=step, note=observe.run_chunk(chunk, namespace, fallback))
    for step in job["steps"]:
        emit(event="begin", step=step["id"])
        try:
            record = run_step(step, job, namespace, observe, records, torch)
        except (observe.ObservationError, checks.CheckFailed) as err:
            record = records.Failure(str(err)[:records.MAX_TEXT])
        except MemoryError:
            record = records.Failure("ran out of memory (MemoryError)")
        except Exception as err:
            where = err.__traceback__
            while where.tb_next:
                where = where.tb_next
            record = records.Failure(f"{type(err).__name__}: {err} (at {where.tb_frame.f_code.co_filename}:"
                                     f"{where.tb_lineno})"[:records.MAX_TEXT])
        records.write(os.path.join(job["sandbox"], step["id"] + ".rec"), record)
        emit(event="end", step=step["id"])
    events.close()
    os._exit(0)  # threads the submission left running end here


def run_step(step: dict, job: dict, namespace: dict, observe, records, torch):
    kind, n_class = step["kind"], job["n_class"]
    if step["op"] == "structure":
        model = observe.build(namespace, kind, n_class, default_init=False)
        return observe.observe_structure(model, kind, [tuple(s) for s in job["output_sizes"]])
    if step["op"] == "outputs":
        model = observe.build(namespace, kind, n_class, default_init=False)
        return observe.observe_outputs(model, kind, job["seed"], tuple(job["equivalence_size"]), n_class)
    if step["op"] == "copy_params":
        return observe.observe_copy(namespace, kind, job["seed"], n_class)
    if step["op"] == "predict":
        images = torch.load(job["images"], weights_only=True)
        return observe.observe_predictions(namespace, kind, n_class, step["checkpoint"], images, job["device"])
    raise ValueError(f"unknown step {step['op']!r}")


if __name__ == "__main__":
    main()
