"""Paper targets registry, result tables, plots and the results README (the ``report`` stage)."""
