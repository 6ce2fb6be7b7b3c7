"""Storage: typed records and baselines, their loaders, file locations, targets, atomic writes."""
