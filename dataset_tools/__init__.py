"""Obtain, verify and split the CMP Facade Database: ``python -m dataset_tools --help``."""
