"""Fuzzing: the libFuzzer targets (C++) and the regression corpus generator."""
