"""Files: image sniffing, decoding and encoding; GeoTIFF georeference; GeoJSON; product names.

Nothing here knows about jobs or HTTP, nor about how slicks are found.
"""

import os

# GDAL's block cache defaults to 5 % of RAM (1.2 GB on a 24 GB machine) and fills with every
# window read of a big scene; 64 MiB is plenty for reading tiles once. Set before GDAL starts;
# an operator's own GDAL_CACHEMAX wins.
os.environ.setdefault("GDAL_CACHEMAX", "64")
