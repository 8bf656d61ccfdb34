"""After training: blending out-of-fold predictions (blend) and inference over a test folder (predict)."""
