"""One cell: config, runner, the server and load processes, strategies, probes, calibration."""
