"""Post-training: SFT and DPO, and the iterative SFT -> sample -> score -> pair -> DPO loop (issue 18).

``training.posttrain.tasks``: synthetic tasks with checkable answers, their character-level tokenizer and
tiny initial models; ``training.posttrain.scorers``: pluggable scorers (verifier, reward model, judge hook)
and best-vs-worst pairing; sampling itself is ``training.generate``.
"""
