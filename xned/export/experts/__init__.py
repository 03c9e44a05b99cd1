"""Word experts: training documents, the per-candidate-set models, training, calibration, reach."""
