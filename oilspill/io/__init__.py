"""Files: image sniffing, decoding and encoding; GeoTIFF georeference; GeoJSON; product names.

Nothing here knows about jobs or HTTP, nor about how slicks are found.
"""
