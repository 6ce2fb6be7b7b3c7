"""Stored reference results, installed as the package `cnnbench_baselines` so installs find them.

`measured/<budget>/<backend>-<precision>-<device class>.json`: baselines aggregated from run
records (`bench.measurement.aggregate`; the file format: `bench.storage.baselines`);
`published/notebook.json`: the notebook's own numbers. Only `bench.storage.layout` knows these
paths.
"""
