"""HMS harmful brain activity classification: data, signal front-ends, models, training, blending."""
