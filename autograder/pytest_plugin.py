"""SHIM issue 22: the pytest front-end is :mod:`autograder.frontends.pytest_plugin`; an install made
before it moved still names this module as its ``pytest11`` entry point. Remove once every install
is refreshed (``pip install -e ./autograder``)."""
from .frontends.pytest_plugin import *  # noqa: F401,F403  SHIM issue 22
