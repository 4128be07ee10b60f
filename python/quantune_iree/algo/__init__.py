"""Pure maths and decisions over the records of `model`: calibration observers, quantization
arithmetic, error metrics, sensitivity ranking, layer selection and the plan rules. Imports no
IREE and no native extension."""
