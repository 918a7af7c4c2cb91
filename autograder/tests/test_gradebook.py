"""How the grader names nbgrader's refusal of a student's notebook. The course on real nbgrader (the README's
commands as written: the build, four students, two of them mangled, the grader filing into the gradebook,
written answers, feedback) is tests/test_notebook.py's ``Course``."""
from autograder.reports.nbgrader import nbgrader_cause


def test_nbgrader_cause_is_the_exception_line_not_a_tail():
    output = ("[AutogradeApp | WARNING] something\nTraceback (most recent call last):\n  File \"x.py\", line 3\n"
              "    raise RuntimeError(...)\nRuntimeError: Cell with id 'a' exists multiple times!\n"
              "[AutogradeApp | ERROR] There was an error processing assignment: /x/submitted/bob/a\n" + "x" * 3000)
    assert nbgrader_cause(output) == "RuntimeError: Cell with id 'a' exists multiple times!"
    output = ("[AutogradeApp | WARNING] Cell with id 'a' exists multiple times!\n"
              "[AutogradeApp | WARNING] Attribute 'checksum' for cell a has changed! (should be: 3e, got: c6)\n"
              "[AutogradeApp | ERROR] One or more notebooks in the assignment use an old version \n"
              "    of the nbgrader metadata format. Please **back up your class files\n")
    assert nbgrader_cause(output) == ("Cell with id 'a' exists multiple times!; nbgrader then stopped: One or more "
                                      "notebooks in the assignment use an old version")
