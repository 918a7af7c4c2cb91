"""The grading machinery the notebook's checks share with the grader: internal, not fcnkit's face.

A check observes a model (``observe``, ``observers``: what a model does, recorded as the plain data of
``records``, under the seeded weights of ``seeded``), judges the observation (``judges``, ``dropout``,
against the reference's activations in ``stages``) and, when it fails, says what it found as data
(``diagnoses``); a check's outcome is a :class:`~fcnkit._grading.verdicts.CheckResult` (``verdicts``), one type
for the notebook and the grader. ``extract`` finds the definitions in a notebook, as the grader does;
``describe`` says what a layer is in words. fcnkit's face uses them (:func:`fcnkit.check`, a checkpoint's
loading, the mIoU line); the grader (``fcnkit-grader``) imports them directly, so that both judge alike.
No stable API: a module here may change with any release.
"""
