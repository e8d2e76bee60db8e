"""SynthReID, the embedded benchmark: generator, ground truth and difficulty report."""

from genreid.config.sections.data import SynthConfig, SynthDomainBConfig
from genreid.synth.generator import generate_synthreid
from genreid.synth.ground_truth import GroundTruth, load_ground_truth
from genreid.synth.reference import check_generated

__all__ = [
    "GroundTruth", "SynthConfig", "SynthDomainBConfig", "check_generated", "generate_synthreid", "load_ground_truth",
]
