"""oilspill: find oil spills in SAR satellite images, as a single-process batch service."""

__version__ = "0.1.0"
