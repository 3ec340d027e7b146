"""Running one training job: its folder and checkpoints, environments, devices, the step loop, the online phase."""
