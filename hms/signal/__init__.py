"""Signal processing: montages, filters and spectral front-ends batched on the device (montage, filters,
spectra, frontend), and the numpy Kaggle-spectrogram recipe (kaggle_spectrogram)."""
