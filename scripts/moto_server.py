#!/usr/bin/env python3
"""moto's server, with the fixes the AWS SDK for Rust needs. Same arguments as `moto_server`.

- ListParts: moto 5.2.5 names the XML root `ListPartsResponse`; S3 names it `ListPartsResult`,
  and the Rust SDK refuses anything else ("encountered invalid XML root"). boto3 does not
  care, which is how moto gets away with it.
- GetBucketVersioning: the same, `GetBucketVersioningResponse` for S3's
  `VersioningConfiguration`.
"""

from moto.core import serialize
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

if __name__ == "__main__":
    main()
