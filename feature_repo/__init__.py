"""The declarative Feast repo of pushgen (definitions in `definitions.py`)."""
