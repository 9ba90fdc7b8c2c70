"""Ensemble stage: soft (probability) and hard (majority) voting over prediction folders and submission CSVs."""
