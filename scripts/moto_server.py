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
- TransactWriteItems copies the whole table to undo a failed transaction (below): only the
  items it names are kept instead.
- A Query lists and sorts every item of the table to pick the ones it keeps (below): a query
  of the table takes only the partition's, an index query skips the sort that never shows.
- With `MOTO_CALL_LOG=FILE`, every request a function made (its SDK names it: `app/{name}` in
  the user agent, from `AWS_LAMBDA_FUNCTION_NAME`) or signed for a browser (a presigned URL or a
  form upload: locally its key id ends in `.{name}`, `LOCAL_SIGNER_NAMES`) is appended to FILE as
  a JSON line: what `scripts/iam_calls.py` checks against the function's policy in the template.
- A form upload (POST object) answers without the object's ETag and without the bucket's CORS
  headers, so a browser may not read the ETag S3 would expose (the web app's Uppy logged
  "Refused to get unsafe header etag"): both added, with the version id, as S3 answers.
"""

import copy
import io
import json
import os
import re
import threading
from urllib.parse import parse_qs, unquote

from moto.core import serialize
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.s3.models import FakeKey
from moto.s3.responses import S3Response
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
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


# DynamoDB transactions: moto 5.2.5 deep-copies every table a transaction names before it runs,
# to put the copy back if it fails. That is the whole table (every item, every stream record)
# for each TransactWriteItems, so one costs more the more the table holds (an upload grant took
# 140 ms at 800 items, 6 ms without the copy), and putting the copy back undoes whatever other
# requests wrote meanwhile. Instead, the items the transaction names are kept as they were, and
# if it fails they are put back and the stream records it added dropped.
_transaction = threading.local()


def _deepcopy_table(self, memo):
    if getattr(_transaction, "undo", False):
        return self  # the transaction's own copy: it keeps what it needs itself
    new = self.__class__.__new__(self.__class__)
    memo[id(self)] = new
    new.__dict__.update(copy.deepcopy(self.__dict__, memo))
    return new


def _named_items(backend, transact_items):
    """(table, hash, range, the item as it is, its key as stream records show it) of each item
    the transaction names."""
    named = []
    for entry in transact_items:
        for op in entry.values():
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            key = (op.get("Key") or op.get("Item")) if table is not None else None
            try:
                attrs = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
                hash_value = DynamoType(key[attrs[0]])
                range_value = DynamoType(key[attrs[1]]) if len(attrs) == 2 else None
                item = copy.deepcopy(table.get_item(hash_value, range_value))
            except Exception:  # not a valid key: the transaction itself refuses it
                continue
            named.append((table, hash_value, range_value, item, {a: key[a] for a in attrs}))
    return named


def _put_back(table, hash_value, range_value, item):
    if range_value is None and item is None:
        table.items.pop(hash_value, None)
    elif range_value is None:
        table.items[hash_value] = item
    elif item is None:
        table.items.get(hash_value, {}).pop(range_value, None)
    else:
        table.items[hash_value][range_value] = item


_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_with_undo(self, transact_items):
    named = _named_items(self, transact_items)
    streams = {id(t): (t, len(t.stream_shard.items)) for t, *_ in named if t.stream_shard is not None}
    _transaction.undo = True
    try:
        return _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_value, range_value, item, _ in reversed(named):
            _put_back(table, hash_value, range_value, item)
        for table, length in streams.values():
            keys = [k for t, *_, k in named if t is table]
            added = table.stream_shard.items[length:]
            table.stream_shard.items[length:] = [r for r in added if r.record["dynamodb"]["Keys"] not in keys]
        raise
    finally:
        _transaction.undo = False


Table.__deepcopy__ = _deepcopy_table
DynamoDBBackend.transact_write_items = _transact_write_items_with_undo


# Form uploads (POST object): moto answers without the object's ETag (and version id) and
# without the bucket's CORS headers, which S3 sends; a browser then cannot read the ETag.
_bucket_response_post = S3Response._bucket_response_post


def _post_object_like_s3(self, request, bucket_name):
    status, headers, body = _bucket_response_post(self, request, bucket_name)
    if self.data.get("Action") != "PutObject" or "key" not in self.querystring:
        return status, headers, body  # DeleteObjects, or a refusal
    key = self.backend.get_object(bucket_name, self.querystring["key"][0])
    headers = {**self._get_cors_headers_other(), **headers}
    if key is not None:
        headers.setdefault("ETag", key.etag)
        if key.version_id and key.version_id != "null":
            headers.setdefault("x-amz-version-id", key.version_id)
    return status, headers, body


S3Response._bucket_response_post = _post_object_like_s3


# Queries: moto 5.2.5 takes `all_items()` (every item of the table, sorted by the table's keys)
# for every Query, then keeps the matching ones and sorts those. The live updates' notifier asks
# for one user's sockets per event: at 1,000 sockets that sort was most of moto's time and capped
# the events at 50 a second. While a query of the table itself runs, `all_items()` answers the
# asked partition's items only (the query keeps exactly those, and sorts them by range key); while
# an index query runs, it answers every item unsorted: the query sorts what it keeps by the
# index's keys and then the table's, a total order, so the order it was given never shows.
# Scans and anything else are as before.
_partition = threading.local()
_query = Table.query
_all_items = Table.all_items


def _query_by_partition(self, hash_key, *args, **kwargs):
    index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
    if index_name is None and hash_key is None:
        return _query(self, hash_key, *args, **kwargs)
    _partition.key, _partition.index = (None, True) if index_name is not None else (hash_key, False)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _partition.key, _partition.index = None, False


def _all_items_of_the_partition(self):
    key = getattr(_partition, "key", None)
    if getattr(_partition, "index", False):
        return [item for hash_set in self.items.values()
                for item in (hash_set.values() if self.range_key_attr else [hash_set])]
    if key is None:
        return _all_items(self)
    found = self.items.get(key)
    if found is None:
        return []
    # Unsorted: the query sorts the partition by its range key itself (unique within it).
    return list(found.values()) if self.range_key_attr else [found]


Table.query = _query_by_partition
Table.all_items = _all_items_of_the_partition


# The calls of the functions, for scripts/iam_calls.py: what each request asked, as far as its
# IAM action and resource go (the body only of a JSON-protocol call or a multi-object delete).
_CALL_LOG = os.environ.get("MOTO_CALL_LOG")
_APP = re.compile(r"(?:^|\s)app/([^\s]+)")
_FORM_FIELD = re.compile(rb'name="(x-amz-credential|key)"\r\n\r\n([^\r\n]*)', re.IGNORECASE)
_log_lock = threading.Lock()


def _signer(environ, query):
    """(function, form key) of a request a browser sent with a function's signature: a presigned
    URL's `X-Amz-Credential`, or a form upload's `x-amz-credential` field (and its `key`). Each
    function signs with `.{name}` after the key id locally (`LOCAL_SIGNER_NAMES`)."""
    credential, form_key = query.get("X-Amz-Credential", [None])[0], None
    if credential is None and environ.get("REQUEST_METHOD") == "POST" and \
            environ.get("CONTENT_TYPE", "").startswith("multipart/form-data"):
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size else b""
        environ["wsgi.input"] = io.BytesIO(body)
        fields = {name.decode().lower(): value.decode("utf-8", "replace") for name, value in _FORM_FIELD.findall(body)}
        credential, form_key = fields.get("x-amz-credential"), fields.get("key")
    key_id = (credential or "").split("/", 1)[0]
    return (key_id.rsplit(".", 1)[1], form_key) if "." in key_id else (None, None)


def _recorded(call):
    def record(self, environ, start_response):
        agent = " ".join(environ.get(h, "") for h in ("HTTP_X_AMZ_USER_AGENT", "HTTP_USER_AGENT"))
        sdk = _APP.search(agent)
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        app, form_key = (sdk.group(1), None) if sdk else _signer(environ, query)
        if app:
            line = {
                "app": app,
                "presigned": not sdk,
                "formKey": form_key,
                "method": environ.get("REQUEST_METHOD"),
                "host": environ.get("HTTP_HOST", ""),
                "path": unquote(environ.get("PATH_INFO", "")),
                "query": {k: v[0] for k, v in query.items()},
                "target": environ.get("HTTP_X_AMZ_TARGET"),
                "copySource": environ.get("HTTP_X_AMZ_COPY_SOURCE"),
                "taggingDirective": environ.get("HTTP_X_AMZ_TAGGING_DIRECTIVE"),
            }
            if line["target"] or (line["method"] == "POST" and "delete" in line["query"]):
                size = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(size) if size else b""
                environ["wsgi.input"] = io.BytesIO(body)
                line["body"] = body.decode("utf-8", "replace")
            with _log_lock, open(_CALL_LOG, "a") as f:
                f.write(json.dumps(line) + "\n")
        return call(self, environ, start_response)

    return record


if _CALL_LOG:
    DomainDispatcherApplication.__call__ = _recorded(DomainDispatcherApplication.__call__)


if __name__ == "__main__":
    main()
