"""KFP component: the content hash of the source data, the key the ingest step is cached on.

Never cached itself (the pipeline turns caching off for it): each run hashes the bytes at
`data_location` again, and `simulate_or_ingest` takes the hash as a parameter, so new data at
the same URI misses the cache and is read, while unchanged data is served from it. The work is
`pushgen.data.ingest.content_hash`.
"""

from kfp import dsl

from components import COMPONENT_DEFAULTS


@dsl.component(**COMPONENT_DEFAULTS)
def fingerprint(data_location: str = "", n_videos: int = 200, seed: int = 0) -> str:
    """sha256 of the source tables at `data_location` (of the simulator settings when empty).

    Args:
        data_location: where the source tables are (local or s3:// directory); empty: simulate.
        n_videos: the simulated world's size, hashed when `data_location` is empty.
        seed: the simulated world's seed, hashed when `data_location` is empty.
    """
    from pushgen.data.ingest import content_hash

    return content_hash(data_location, n_videos=n_videos, seed=seed)
