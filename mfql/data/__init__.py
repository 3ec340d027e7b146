"""Datasets: offline transitions (OGBench, Minari), the replay buffer, pixel frames."""
