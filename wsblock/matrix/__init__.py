"""Matrices of cells: the TOML spec and profiles, and the resumable matrix runner."""
