"""The generator side shared by stages 2 and 3: the networks bundle, the views of one forward,
the G and D losses of an iteration, the mesh renders as tensors and the generated-views sheet."""
