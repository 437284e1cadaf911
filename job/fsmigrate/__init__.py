"""Migrate SageMaker Feature Store feature groups with Spark."""

__version__ = "0.1.0"
