"""One module per params section."""
