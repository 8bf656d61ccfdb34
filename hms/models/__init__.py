"""Models: one self-contained file per family, built from `conf/model/<family>.yaml` by `_target_`.

The contract every model keeps (the training loop, validation, inference and the blend rely on nothing else):

- **In**: the batch dict. It holds one tensor per input named in `data.inputs`, under the input's name
  (`batch["eeg"]` [B, 20, 10000] raw microvolts, `batch["spec"]` [B, 300, 400] Kaggle power, ...; see
  hms/data/inputs.py), plus `target`, `n_votes` and ids, which a model must not need. A model reads
  only the inputs it uses; signal processing (montage, filters, spectra) happens inside it, on the device.
- **Out**: `{"logits": [B, 6], "aux": {name: [B, 6], ...}}`, logits in class order (hms.layout.CLASSES).
  `aux` holds auxiliary heads (empty for a single model); each is trained with its weight in
  `loss_weights` next to the main head.
- **`loss_weights`** (optional attribute): {"main": w, <aux name>: w, ...}; a missing "main" is 1 and a
  missing aux name is 0. A model must refuse a key that names none of its heads (the fusion does).
- **Extractors**, the models a fusion can combine, also have `forward_features(batch) -> [B, num_features]`,
  `num_features` and `head` (a Linear(num_features, 6)); their `forward` is `head(forward_features)`.
- **Sizes** belong to the family: `conf/size/<family>/<size>.yaml` holds the family's numbers at that
  scale, merged over the family's own defaults (its yaml); a family with no entry for a size keeps its
  defaults, so `size=` never breaks a family. Backbones come from `create_backbone` (hms/models/backbone.py).

Adding a family: a file `hms/models/<family>.py` with a module that keeps this contract, and
`conf/model/<family>.yaml` with its `_target_` (or `conf/extractor/<family>.yaml`, for the fusion to
use it too). Nothing else: the tests enumerate `conf/model/*.yaml` x `conf/size/*.yaml`.
"""
