"""Reading and writing rasters: grids and warped frames, radiometry, atomic GeoTIFF sinks, S-2 products."""
