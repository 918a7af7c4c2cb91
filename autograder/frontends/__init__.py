"""The ways in: the command line, nbgrader, Gradescope, pytest."""
