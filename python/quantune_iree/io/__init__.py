"""Files and text: calibration data, atomic outputs, every report format, and running a
shipped vmfb from its sidecar."""
