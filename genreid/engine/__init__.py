"""The training engine shared by the three training stages (warm-up, generator pre-training,
joint training): one loop (:mod:`.trainer`), one checkpoint format (:mod:`.checkpoint`), one LR
rule (:mod:`.schedule`), one model-selection record (:mod:`.selection`), distributed helpers
(:mod:`.dist`) and mixed precision (:mod:`.amp`). Each stage supplies only its step."""
