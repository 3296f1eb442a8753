"""This machine: what it is (CPU, GPU, memory; read without torch) and its calibration file. Leaf modules."""
