"""Helpers of the Python tests: the repository's paths and CLI (repo), archive
comparison (graph_compare), the oracle (ExecuTorch's pass), independent
checks of a fold (semantic, verification_check, front_door_check) and the
QAT pattern cache (pattern_cache)."""
