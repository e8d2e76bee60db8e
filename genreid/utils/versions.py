"""Versions of the code that decides what a run measures without any param saying so. Each lives here,
in a module that imports nothing, so that the seed archive can fingerprint them without importing the
code they describe."""

# The SynthReID generator: a new version gives other images and ground truth for the same params
# (the committed content hashes are in genreid/synth/reference.py).
SYNTHREID_GENERATOR_VERSION = 2

# The seed scheme of genreid.utils.seeding.stream_seed: a new version gives every random stream anew.
STREAM_SCHEME_VERSION = 1
