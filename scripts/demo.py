#!/usr/bin/env python3
"""Upload files through the API exactly as the web app does, and check each comes back.

    demo.py --api http://127.0.0.1:3000 --token TOKEN [--multipart BIGFILE] FILE...

For each FILE: POST /v1/uploads, a multipart/form-data POST of the returned fields and the
file straight to S3, then GET /v1/files/{fileId}/download and a GET of the presigned URL,
which must return the same bytes. With --multipart, BIGFILE goes up in parts through
/v1/uploads/multipart (sign, PUT each part, complete) and is checked the same way.
Exits non-zero on the first difference.
"""

import argparse
import json
import mimetypes
import os
import sys

import requests

TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif", ".pdf": "application/pdf"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--api", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--multipart", help="a large file to upload in parts")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    session = requests.Session()
    session.trust_env = False  # local servers, never through a proxy
    auth = {"authorization": f"Bearer {args.token}"}

    for path in args.files:
        name = os.path.basename(path)
        data = open(path, "rb").read()
        ctype = content_type(name)
        r = session.post(f"{args.api}/v1/uploads", headers=auth, json={"filename": name, "contentType": ctype, "size": len(data)})
        if r.status_code != 201:
            sys.exit(f"demo: POST /v1/uploads for {name}: {r.status_code} {r.text}")
        grant = r.json()
        up = session.post(grant["upload"]["url"], data=grant["upload"]["fields"], files={"file": (name, data, ctype)})
        if up.status_code not in (200, 201, 204):
            sys.exit(f"demo: upload of {name} to S3: {up.status_code} {up.text}")
        check_download(session, args.api, auth, grant, name, data)

    if args.multipart:
        name = os.path.basename(args.multipart)
        data = open(args.multipart, "rb").read()
        body = {"filename": name, "contentType": content_type(name), "size": len(data)}
        r = session.post(f"{args.api}/v1/uploads/multipart", headers=auth, json=body)
        if r.status_code != 201:
            sys.exit(f"demo: POST /v1/uploads/multipart for {name}: {r.status_code} {r.text}")
        upload = r.json()
        numbers = list(range(1, upload["partCount"] + 1))
        r = session.post(f"{args.api}/v1/uploads/{upload['uploadId']}/parts", headers=auth, json={"partNumbers": numbers})
        if r.status_code != 200:
            sys.exit(f"demo: signing parts of {name}: {r.status_code} {r.text}")
        for part in r.json()["parts"]:
            start = (part["partNumber"] - 1) * upload["partSize"]
            put = session.put(part["url"], data=data[start : start + part["size"]])
            if put.status_code != 200:
                sys.exit(f"demo: part {part['partNumber']} of {name}: {put.status_code} {put.text}")
        r = session.post(f"{args.api}/v1/uploads/{upload['uploadId']}/complete", headers=auth)
        if r.status_code != 200:
            sys.exit(f"demo: completing {name}: {r.status_code} {r.text}")
        check_download(session, args.api, auth, upload, name, data)


def content_type(name):
    return TYPES.get(os.path.splitext(name)[1].lower()) or mimetypes.guess_type(name)[0]


def check_download(session, api, auth, grant, name, data):
    r = session.get(f"{api}/v1/files/{grant['fileId']}/download", headers=auth)
    if r.status_code != 200:
        sys.exit(f"demo: download grant for {name}: {r.status_code} {r.text}")
    back = session.get(r.json()["url"])
    if back.content != data:
        sys.exit(f"demo: {name} came back different ({len(back.content)} of {len(data)} bytes)")
    print(json.dumps({"fileId": grant["fileId"], "key": grant["key"], "bytes": len(data)}))


if __name__ == "__main__":
    main()
