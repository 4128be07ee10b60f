"""The pipeline's passes over a model, built on `ir` and `backend`: the FP32 pass (calibration),
the INT8 pass, the sensitivity analysis, the speed probe and the output-SQNR search."""
