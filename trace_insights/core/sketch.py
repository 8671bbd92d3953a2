"""Latency and value sketches: fastdigest t-digests, 200 centroids, versioned blobs."""

from collections.abc import Mapping

from fastdigest import TDigest

FORMAT_VERSION = b"\x01"
MAX_CENTROIDS = 200


class SketchFormatError(ValueError):
    """A stored blob written by an unknown format version."""


def new_digest() -> TDigest:
    return TDigest(max_centroids=MAX_CENTROIDS)


def of_values(values: list[float]) -> TDigest:
    return TDigest.from_values(values, max_centroids=MAX_CENTROIDS)


def dump(digest: TDigest) -> bytes:
    return FORMAT_VERSION + digest.to_bytes()


def load(blob: bytes) -> TDigest:
    if blob[:1] != FORMAT_VERSION:
        raise SketchFormatError(f"unknown digest format version {blob[:1]!r}")
    return TDigest.from_bytes(blob[1:])


def merged(copies: Mapping[str, bytes]) -> TDigest:
    """A bucket's digest from its copies (one per partition, by field), merged in field order:
    a t-digest merge depends on order, so the same data gives the same percentiles whatever
    order the store lists the copies in."""
    return combined([load(copies[field]) for field in sorted(copies)])


def combined(digests: list[TDigest]) -> TDigest:
    digest = new_digest()
    for other in digests:
        digest.merge_inplace(other)
    return digest
