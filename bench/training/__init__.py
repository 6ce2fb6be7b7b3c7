"""Training: the recipe and its epoch driver, run folders, budgets, precisions, plants."""
