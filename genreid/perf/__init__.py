"""Performance checks: stage iterations at chosen shapes (GPU check, paper-shape benchmarks)."""
