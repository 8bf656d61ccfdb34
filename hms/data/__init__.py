"""A Kaggle-layout folder -> caches -> Dataset: readers and checks (kaggle, check), the declared inputs
(inputs), labels, folds and memory-mapped caches (prepare), row selection (sampling), windows (dataset)."""
