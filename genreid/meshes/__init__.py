"""SMPL estimation (HMR regressor, SynthReID oracle), structure renders at every yaw angle,
their resumable storage and the checks of the meshes stage (docs/method.md#pipeline)."""
