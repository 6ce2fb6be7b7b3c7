"""Stored reference results, shipped with the package so that installs find them.

`measured/<budget>/<backend>-<precision>-<device class>.json`: baselines aggregated from run
records (`bench.baselines`); `published/notebook.json`: the notebook's own numbers. Only
`bench.layout` knows these paths.
"""
