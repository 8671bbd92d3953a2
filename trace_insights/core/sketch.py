"""Latency and value sketches: fastdigest t-digests, 200 centroids, versioned blobs."""

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


def merged(blobs: list[bytes]) -> TDigest:
    return combined([load(blob) for blob in blobs])


def combined(digests: list[TDigest]) -> TDigest:
    digest = new_digest()
    for other in digests:
        digest.merge_inplace(other)
    return digest
