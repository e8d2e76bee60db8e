"""SynthReID, the embedded benchmark: generator, ground truth and difficulty report."""

from genreid.synth.generator import SynthSettings, generate_synthreid
from genreid.synth.ground_truth import GroundTruth, load_ground_truth
from genreid.synth.reference import check_generated

__all__ = ["GroundTruth", "SynthSettings", "check_generated", "generate_synthreid", "load_ground_truth"]
