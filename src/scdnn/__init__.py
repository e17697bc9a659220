"""scdnn: landslide boundary segmentation with SCDnn (Li et al. 2024, China Geology)."""

__version__ = "0.1.0"
