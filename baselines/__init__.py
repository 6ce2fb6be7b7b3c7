"""Stored reference results, installed as the package `cnnbench_baselines` so installs find them.

`measured/<budget>/<backend>-<precision>-<device class>.json`: baselines aggregated from run
records (`bench.baselines`); `published/notebook.json`: the notebook's own numbers. Only
`bench.layout` knows these paths.
"""
