"""Launchers: local processes (the embedded default), later SSH and Slurm."""
