"""Fine-tuning on an analyst's own area from Sentinel-2 revisits and OSM vectors (no HR image)."""
