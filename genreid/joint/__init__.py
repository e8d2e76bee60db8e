"""Stage 3: joint generative-contrastive training of GCL and GCL+ (and their control arms)."""
