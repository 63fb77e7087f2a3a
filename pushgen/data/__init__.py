"""The data steps and their contracts: the simulated world (`simulator`), ingest of a data location
(`ingest`), captions (`caption`), the quality filters and confidence weights (`clean`), style labels
(`label`), the table contracts (`contracts`) and the category names (`categories`).

Layer 1: may import `pushgen.core` only.
"""
