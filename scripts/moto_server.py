#!/usr/bin/env python3
"""moto's server, with the fixes the AWS SDK for Rust needs. Same arguments as `moto_server`.

- ListParts: moto 5.2.5 names the XML root `ListPartsResponse`; S3 names it `ListPartsResult`,
  and the Rust SDK refuses anything else ("encountered invalid XML root"). boto3 does not
  care, which is how moto gets away with it.
"""

from moto.core import serialize
from moto.server import main

_serialize = serialize.S3Serializer._serialized_result_to_response


def _serialize_like_s3(self, resp, result, shape, serialized_result):
    resp = _serialize(self, resp, result, shape, serialized_result)
    body = resp.get("body")
    if self.operation_model.name == "ListParts" and isinstance(body, str):
        resp["body"] = body.replace("<ListPartsResponse", "<ListPartsResult", 1).replace(
            "</ListPartsResponse>", "</ListPartsResult>"
        )
    return resp


serialize.S3Serializer._serialized_result_to_response = _serialize_like_s3

if __name__ == "__main__":
    main()
