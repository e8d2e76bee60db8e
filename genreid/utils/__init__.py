"""Small shared helpers: atomic file writes, seeding, provenance, devices."""
