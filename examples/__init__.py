"""The examples, run as `python examples/NAME.py`; the tests import them as a package."""
