"""Datasets: pinned sources, download and verification, format readers, preprocessing to data/prepared."""
