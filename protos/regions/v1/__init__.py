"""regions.v1: generated from regions.proto by protos/generate.py (do not edit by hand)."""
