"""The programs the tests, tools and benches are made of: the models
(models, xnnpack_models, fixtures), the QAT flows (flows,
per_channel_quantizer), the backends' lowerings (cadence_lowering,
xnnpack_lowering), the program cache and the independent measurement of a
fold (measure). Imported from the repository root (pytest's pythonpath,
`python -m tools.X`, `python -m bench.X`)."""
