#!/usr/bin/env python3
"""moto's server, with the fixes the AWS SDK for Rust needs. Same arguments as `moto_server`.

- ListParts: moto 5.2.5 names the XML root `ListPartsResponse`; S3 names it `ListPartsResult`,
  and the Rust SDK refuses anything else ("encountered invalid XML root"). boto3 does not
  care, which is how moto gets away with it.
- GetBucketVersioning: the same, `GetBucketVersioningResponse` for S3's
  `VersioningConfiguration`.
- Object bodies are never freed: moto 5.2.5 keeps every S3 key object it ever made in
  `FakeKey.instances_tracked` (for its dashboard and reset), and ListObjectVersions deep-copies
  every version of every key in the bucket (a temporary file with the bytes each) at each call.
  The test suite lists versions whenever an upload settles: one moto held 34 GB of deleted
  temporary files after it. Untracked, a key's bytes go when moto no longer refers to it.
"""

from moto.core import serialize
from moto.s3.models import FakeKey
from moto.server import main

_serialize = serialize.S3Serializer._serialized_result_to_response


def _serialize_like_s3(self, resp, result, shape, serialized_result):
    resp = _serialize(self, resp, result, shape, serialized_result)
    body = resp.get("body")
    roots = {"ListParts": ("ListPartsResponse", "ListPartsResult"),
             "GetBucketVersioning": ("GetBucketVersioningResponse", "VersioningConfiguration")}
    if self.operation_model.name in roots and isinstance(body, str):
        moto_root, s3_root = roots[self.operation_model.name]
        resp["body"] = body.replace(f"<{moto_root}", f"<{s3_root}", 1).replace(f"</{moto_root}>", f"</{s3_root}>")
    return resp


serialize.S3Serializer._serialized_result_to_response = _serialize_like_s3



class _Untracked(list):
    """A registry that keeps nothing."""

    def append(self, _instance):
        pass


FakeKey.instances_tracked = _Untracked()

if __name__ == "__main__":
    main()
