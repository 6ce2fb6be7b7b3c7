"""Benchmark harness for the notebook's CNNs on MNIST: data, training, records and the gate."""
