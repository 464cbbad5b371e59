"""Composite Beam PTransforms of the AudioSet build; the computing lives in :mod:`transforms.core`."""
