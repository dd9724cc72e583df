"""S3 behaviour checks with boto3 against a running dBytes gateway.

Run by gateway/tests/s3_clients.rs, which starts the gateway and passes:
  DBYTES_ENDPOINT, DBYTES_ALICE_KEY, DBYTES_ALICE_SECRET, DBYTES_BOB_KEY,
  DBYTES_BOB_SECRET
and the names of the groups to run as arguments. Each check raises on the
first difference from what Amazon S3 does; the exit code says whether all
groups passed.
"""

import base64
import datetime
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
import zlib

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["DBYTES_ENDPOINT"]
CONFIG = Config(
    s3={"addressing_style": "path"},
    retries={"max_attempts": 1, "mode": "standard"},
    connect_timeout=10,
    read_timeout=60,
)


def client(key=None, secret=None, config=CONFIG):
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id=key or os.environ["DBYTES_ALICE_KEY"],
        aws_secret_access_key=secret or os.environ["DBYTES_ALICE_SECRET"],
        config=config,
    )


def bob():
    return client(os.environ["DBYTES_BOB_KEY"], os.environ["DBYTES_BOB_SECRET"])


def error_code(call, *args, **kwargs):
    """The S3 error code (and HTTP status) a call fails with."""
    try:
        call(*args, **kwargs)
    except ClientError as err:
        return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} succeeded, an error was expected")


def expect_error(code, status, call, *args, **kwargs):
    got = error_code(call, *args, **kwargs)
    assert got == (code, status), f"expected {code}/{status}, got {got}"


def data(length, seed=1):
    return bytes((i * 31 + seed) % 251 for i in range(length))


def md5_hex(payload):
    return hashlib.md5(payload).hexdigest()


def group_objects(s3):
    s3.create_bucket(Bucket="objects")
    body = data(300_000)
    put = s3.put_object(
        Bucket="objects",
        Key="dir/file.bin",
        Body=body,
        ContentType="application/x-test",
        CacheControl="max-age=60",
        ContentDisposition='attachment; filename="f.bin"',
        Metadata={"colour": "blue", "Owner-Name": "Alice"},
    )
    assert put["ETag"] == f'"{md5_hex(body)}"', put["ETag"]
    got = s3.get_object(Bucket="objects", Key="dir/file.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == 'attachment; filename="f.bin"'
    assert got["Metadata"] == {"colour": "blue", "owner-name": "Alice"}, got["Metadata"]
    assert got["ContentLength"] == len(body)
    head = s3.head_object(Bucket="objects", Key="dir/file.bin")
    assert head["ETag"] == put["ETag"] and head["ContentLength"] == len(body)
    # Small objects (inline in the book) and empty ones.
    s3.put_object(Bucket="objects", Key="small", Body=b"hello")
    assert s3.get_object(Bucket="objects", Key="small")["Body"].read() == b"hello"
    s3.put_object(Bucket="objects", Key="empty", Body=b"")
    empty = s3.get_object(Bucket="objects", Key="empty")
    assert empty["Body"].read() == b"" and empty["ETag"] == f'"{md5_hex(b"")}"'
    # Keys with spaces, unicode and characters that need escaping.
    odd = "odd key/ü+%20&=?#[]"
    s3.put_object(Bucket="objects", Key=odd, Body=b"odd")
    assert s3.get_object(Bucket="objects", Key=odd)["Body"].read() == b"odd"
    # Ranges: first bytes, a middle slice across segments, open-ended, suffix.
    for header, start, end in [
        ("bytes=0-9", 0, 10),
        ("bytes=196600-196700", 196600, 196701),
        ("bytes=299990-", 299990, 300000),
        ("bytes=-5", 299995, 300000),
        ("bytes=-999999", 0, 300000),
        ("bytes=299999-400000", 299999, 300000),
    ]:
        part = s3.get_object(Bucket="objects", Key="dir/file.bin", Range=header)
        assert part["Body"].read() == body[start:end], header
        assert part["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert part["ContentRange"] == f"bytes {start}-{end - 1}/{len(body)}", part["ContentRange"]
    expect_error("InvalidRange", 416, s3.get_object, Bucket="objects", Key="dir/file.bin", Range="bytes=300000-")
    expect_error("InvalidRange", 416, s3.get_object, Bucket="objects", Key="empty", Range="bytes=0-1")
    # Errors.
    expect_error("NoSuchKey", 404, s3.get_object, Bucket="objects", Key="missing")
    expect_error("404", 404, s3.head_object, Bucket="objects", Key="missing")
    expect_error("NoSuchBucket", 404, s3.get_object, Bucket="no-such-bucket", Key="k")
    expect_error("BucketAlreadyOwnedByYou", 409, s3.create_bucket, Bucket="objects")
    expect_error("BucketNotEmpty", 409, s3.delete_bucket, Bucket="objects")
    # Overwrite, delete, delete of a missing key (204).
    s3.put_object(Bucket="objects", Key="small", Body=b"second")
    assert s3.get_object(Bucket="objects", Key="small")["Body"].read() == b"second"
    s3.delete_object(Bucket="objects", Key="small")
    s3.delete_object(Bucket="objects", Key="small")
    expect_error("NoSuchKey", 404, s3.get_object, Bucket="objects", Key="small")
    # DeleteObjects, then the bucket can go.
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="objects")["Contents"]]
    result = s3.delete_objects(Bucket="objects", Delete={"Objects": [{"Key": k} for k in keys]})
    assert sorted(d["Key"] for d in result["Deleted"]) == sorted(keys)
    assert "Contents" not in s3.list_objects_v2(Bucket="objects")
    s3.delete_bucket(Bucket="objects")
    expect_error("404", 404, s3.head_bucket, Bucket="objects")
    # Buckets: list, location.
    s3.create_bucket(Bucket="b-one")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert names == ["b-one"], names
    assert s3.get_bucket_location(Bucket="b-one").get("LocationConstraint") in (None, "")


def group_copy(s3):
    s3.create_bucket(Bucket="copy-a")
    s3.create_bucket(Bucket="copy-b")
    body = data(500_000, 7)
    s3.put_object(Bucket="copy-a", Key="src", Body=body, ContentType="text/plain", Metadata={"m": "1"})
    out = s3.copy_object(Bucket="copy-b", Key="dst", CopySource={"Bucket": "copy-a", "Key": "src"})
    assert out["CopyObjectResult"]["ETag"] == f'"{md5_hex(body)}"'
    got = s3.get_object(Bucket="copy-b", Key="dst")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"m": "1"}
    # REPLACE takes the request's headers; copying onto itself needs it.
    expect_error("InvalidRequest", 400, s3.copy_object, Bucket="copy-a", Key="src", CopySource="copy-a/src")
    s3.copy_object(
        Bucket="copy-a",
        Key="src",
        CopySource="copy-a/src",
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"m": "2"},
    )
    head = s3.head_object(Bucket="copy-a", Key="src")
    assert head["ContentType"] == "application/json" and head["Metadata"] == {"m": "2"}
    expect_error(
        "PreconditionFailed", 412, s3.copy_object,
        Bucket="copy-b", Key="x", CopySource="copy-a/src", CopySourceIfMatch='"0000"',
    )
    expect_error("NoSuchKey", 404, s3.copy_object, Bucket="copy-b", Key="x", CopySource="copy-a/missing")
    # UploadPartCopy: a multipart object assembled from a range of one object and all of another.
    mib5 = 5 * 1024 * 1024
    big = data(mib5 + 4096, 9)
    s3.put_object(Bucket="copy-a", Key="big", Body=big)
    upload_id = s3.create_multipart_upload(Bucket="copy-b", Key="assembled")["UploadId"]
    p1 = s3.upload_part_copy(
        Bucket="copy-b", Key="assembled", UploadId=upload_id, PartNumber=1,
        CopySource="copy-a/big", CopySourceRange=f"bytes=0-{mib5 - 1}",
    )["CopyPartResult"]
    assert p1["ETag"] == f'"{md5_hex(big[:mib5])}"', p1
    p2 = s3.upload_part_copy(
        Bucket="copy-b", Key="assembled", UploadId=upload_id, PartNumber=2, CopySource={"Bucket": "copy-b", "Key": "dst"},
    )["CopyPartResult"]
    expect_error(
        "InvalidRange", 416, s3.upload_part_copy,
        Bucket="copy-b", Key="assembled", UploadId=upload_id, PartNumber=3,
        CopySource="copy-a/big", CopySourceRange=f"bytes=0-{len(big)}",
    )
    s3.complete_multipart_upload(
        Bucket="copy-b", Key="assembled", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]},
    )
    assert s3.get_object(Bucket="copy-b", Key="assembled")["Body"].read() == big[:mib5] + body


def group_versioning(s3):
    s3.create_bucket(Bucket="versions")
    assert "Status" not in s3.get_bucket_versioning(Bucket="versions")
    s3.put_object(Bucket="versions", Key="k", Body=b"null-version")
    s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket="versions")["Status"] == "Enabled"
    v1 = s3.put_object(Bucket="versions", Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket="versions", Key="k", Body=b"two")["VersionId"]
    assert v1 != v2 and v1 != "null"
    assert s3.get_object(Bucket="versions", Key="k")["Body"].read() == b"two"
    assert s3.get_object(Bucket="versions", Key="k", VersionId=v1)["Body"].read() == b"one"
    assert s3.get_object(Bucket="versions", Key="k", VersionId="null")["Body"].read() == b"null-version"
    assert s3.head_object(Bucket="versions", Key="k", VersionId=v1)["VersionId"] == v1
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket="versions", Key="k", VersionId="0" * 32)
    expect_error("InvalidArgument", 400, s3.get_object, Bucket="versions", Key="k", VersionId="not-a-version")
    # A plain delete makes a delete marker.
    deleted = s3.delete_object(Bucket="versions", Key="k")
    assert deleted["DeleteMarker"] is True
    marker = deleted["VersionId"]
    try:
        s3.get_object(Bucket="versions", Key="k")
        raise AssertionError("GET after delete succeeded")
    except ClientError as err:
        assert err.response["Error"]["Code"] == "NoSuchKey"
        assert err.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-delete-marker") == "true"
    expect_error("MethodNotAllowed", 405, s3.get_object, Bucket="versions", Key="k", VersionId=marker)
    assert "Contents" not in s3.list_objects_v2(Bucket="versions")
    listing = s3.list_object_versions(Bucket="versions")
    versions = [(v["VersionId"], v["IsLatest"]) for v in listing["Versions"]]
    assert versions == [(v2, False), (v1, False), ("null", False)], versions
    markers = [(m["VersionId"], m["IsLatest"]) for m in listing["DeleteMarkers"]]
    assert markers == [(marker, True)], markers
    # Deleting the marker brings the object back.
    undo = s3.delete_object(Bucket="versions", Key="k", VersionId=marker)
    assert undo["DeleteMarker"] is True and undo["VersionId"] == marker
    assert s3.get_object(Bucket="versions", Key="k")["Body"].read() == b"two"
    # Deleting a version for good.
    s3.delete_object(Bucket="versions", Key="k", VersionId=v2)
    assert s3.get_object(Bucket="versions", Key="k")["Body"].read() == b"one"
    # Suspended: writes replace the null version, older versions stay.
    s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket="versions")["Status"] == "Suspended"
    put = s3.put_object(Bucket="versions", Key="k", Body=b"suspended")
    assert put.get("VersionId") == "null", put.get("VersionId")
    ids = [v["VersionId"] for v in s3.list_object_versions(Bucket="versions")["Versions"]]
    assert ids == ["null", v1], ids
    assert s3.get_object(Bucket="versions", Key="k", VersionId="null")["Body"].read() == b"suspended"
    # Paging through versions with markers.
    s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
    for i in range(5):
        s3.put_object(Bucket="versions", Key=f"p/{i % 2}", Body=str(i).encode())
    seen = []
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket="versions", Prefix="p/", PaginationConfig={"PageSize": 2}):
        seen += [(v["Key"], v["IsLatest"]) for v in page.get("Versions", [])]
    assert seen == [("p/0", True), ("p/0", False), ("p/0", False), ("p/1", True), ("p/1", False)], seen
    expect_error(
        "IllegalVersioningConfigurationException", 400, s3.put_bucket_versioning,
        Bucket="versions", VersioningConfiguration={"Status": "Off"},
    )


def group_listing(s3):
    s3.create_bucket(Bucket="listing")
    keys = ["a.txt", "b/1", "b/2", "b/c/3", "c/4", "d", "e/5/6"]
    for key in keys:
        s3.put_object(Bucket="listing", Key=key, Body=key.encode())
    v2 = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [o["Key"] for o in v2["Contents"]] == ["a.txt", "d"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["b/", "c/", "e/"]
    assert v2["KeyCount"] == 5 and v2["IsTruncated"] is False
    sub = s3.list_objects_v2(Bucket="listing", Prefix="b/", Delimiter="/")
    assert [o["Key"] for o in sub["Contents"]] == ["b/1", "b/2"]
    assert [p["Prefix"] for p in sub["CommonPrefixes"]] == ["b/c/"]
    # Pages of 2 with continuation tokens: objects and prefixes each count.
    pages = []
    token = None
    while True:
        kwargs = {"Bucket": "listing", "Delimiter": "/", "MaxKeys": 2}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        pages.append([o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])])
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert pages == [["a.txt", "b/"], ["d", "c/"], ["e/"]], pages
    after = s3.list_objects_v2(Bucket="listing", StartAfter="b/2")
    assert [o["Key"] for o in after["Contents"]] == ["b/c/3", "c/4", "d", "e/5/6"]
    # v1 with markers, through the paginator.
    seen = []
    for page in s3.get_paginator("list_objects").paginate(Bucket="listing", PaginationConfig={"PageSize": 3}):
        seen += [o["Key"] for o in page.get("Contents", [])]
    assert seen == keys, seen
    v1 = s3.list_objects(Bucket="listing", Prefix="b/", Marker="b/1")
    assert [o["Key"] for o in v1["Contents"]] == ["b/2", "b/c/3"]
    obj = s3.list_objects_v2(Bucket="listing", Prefix="a.txt")["Contents"][0]
    assert obj["Size"] == 5 and obj["ETag"] == f'"{md5_hex(b"a.txt")}"'
    assert s3.list_objects_v2(Bucket="listing", Prefix="zzz")["KeyCount"] == 0
    expect_error("NoSuchBucket", 404, s3.list_objects_v2, Bucket="no-such")


def group_conditions(s3):
    s3.create_bucket(Bucket="conditions")
    etag = s3.put_object(Bucket="conditions", Key="k", Body=b"payload")["ETag"]
    assert s3.get_object(Bucket="conditions", Key="k", IfMatch=etag)["Body"].read() == b"payload"
    expect_error("PreconditionFailed", 412, s3.get_object, Bucket="conditions", Key="k", IfMatch='"abc"')
    expect_error("304", 304, s3.get_object, Bucket="conditions", Key="k", IfNoneMatch=etag)
    assert s3.get_object(Bucket="conditions", Key="k", IfNoneMatch='"other"')["Body"].read() == b"payload"
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    assert s3.get_object(Bucket="conditions", Key="k", IfModifiedSince=past)["Body"].read() == b"payload"
    expect_error("304", 304, s3.get_object, Bucket="conditions", Key="k", IfModifiedSince=future)
    expect_error("PreconditionFailed", 412, s3.get_object, Bucket="conditions", Key="k", IfUnmodifiedSince=past)
    assert s3.get_object(Bucket="conditions", Key="k", IfUnmodifiedSince=future)["Body"].read() == b"payload"
    # If-Match wins over If-Unmodified-Since, If-None-Match over If-Modified-Since (RFC 9110).
    assert s3.get_object(Bucket="conditions", Key="k", IfMatch=etag, IfUnmodifiedSince=past)["ContentLength"] == 7
    expect_error("304", 304, s3.head_object, Bucket="conditions", Key="k", IfNoneMatch=etag)
    expect_error("412", 412, s3.head_object, Bucket="conditions", Key="k", IfMatch='"abc"')
    # Conditional writes.
    expect_error("PreconditionFailed", 412, s3.put_object, Bucket="conditions", Key="k", Body=b"x", IfNoneMatch="*")
    s3.put_object(Bucket="conditions", Key="new", Body=b"x", IfNoneMatch="*")
    expect_error("PreconditionFailed", 412, s3.put_object, Bucket="conditions", Key="k", Body=b"x", IfMatch='"abc"')
    s3.put_object(Bucket="conditions", Key="k", Body=b"y", IfMatch=etag)
    assert s3.get_object(Bucket="conditions", Key="k")["Body"].read() == b"y"


def crc32_b64(payload):
    return base64.b64encode(zlib.crc32(payload).to_bytes(4, "big")).decode()


def group_checksums(s3):
    s3.create_bucket(Bucket="sums")
    body = data(200_000, 3)
    # Current SDKs send CRC32 by default (aws-chunked with a trailer).
    put = s3.put_object(Bucket="sums", Key="default", Body=body)
    assert put.get("ChecksumCRC32") == crc32_b64(body), put
    got = s3.get_object(Bucket="sums", Key="default", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32_b64(body)
    assert got["Body"].read() == body  # botocore validates the checksum as it reads
    # (CRC32C and CRC64NVME need botocore[crt] on the client side.)
    for algorithm, field in [("SHA256", "ChecksumSHA256"), ("SHA1", "ChecksumSHA1"), ("CRC32", "ChecksumCRC32")]:
        put = s3.put_object(Bucket="sums", Key=algorithm, Body=body, ChecksumAlgorithm=algorithm)
        assert field in put, (algorithm, put)
        head = s3.head_object(Bucket="sums", Key=algorithm, ChecksumMode="ENABLED")
        assert head[field] == put[field]
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert s3.head_object(Bucket="sums", Key="SHA256", ChecksumMode="ENABLED")["ChecksumSHA256"] == sha
    # A checksum or Content-MD5 that does not match is refused, nothing stored.
    expect_error("BadDigest", 400, s3.put_object, Bucket="sums", Key="bad", Body=body, ChecksumCRC32="AAAAAA==")
    expect_error(
        "BadDigest", 400, s3.put_object,
        Bucket="sums", Key="bad", Body=body, ContentMD5=base64.b64encode(hashlib.md5(b"x").digest()).decode(),
    )
    expect_error("NoSuchKey", 404, s3.get_object, Bucket="sums", Key="bad")
    good_md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    s3.put_object(Bucket="sums", Key="md5", Body=body, ContentMD5=good_md5)


def group_multipart(s3):
    s3.create_bucket(Bucket="multi")
    size = 5 * 1024 * 1024
    parts_data = [data(size, 1), data(size, 2), data(123_457, 3)]
    upload = s3.create_multipart_upload(Bucket="multi", Key="big", ContentType="video/x-test", Metadata={"a": "b"})
    upload_id = upload["UploadId"]
    uploads = s3.list_multipart_uploads(Bucket="multi")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("big", upload_id)]
    etags = []
    for number, payload in enumerate(parts_data, start=1):
        part = s3.upload_part(Bucket="multi", Key="big", UploadId=upload_id, PartNumber=number, Body=payload)
        assert part["ETag"] == f'"{md5_hex(payload)}"'
        etags.append(part["ETag"])
    listed = s3.list_parts(Bucket="multi", Key="big", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, size), (2, size), (3, 123_457)]
    page = s3.list_parts(Bucket="multi", Key="big", UploadId=upload_id, MaxParts=2)
    assert page["IsTruncated"] and page["NextPartNumberMarker"] == 2
    expect_error(
        "InvalidPart", 400, s3.complete_multipart_upload,
        Bucket="multi", Key="big", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]},
    )
    expect_error(
        "InvalidPartOrder", 400, s3.complete_multipart_upload,
        Bucket="multi", Key="big", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]},
    )
    done = s3.complete_multipart_upload(
        Bucket="multi",
        Key="big",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    joined = b"".join(hashlib.md5(p).digest() for p in parts_data)
    expected_etag = f'"{hashlib.md5(joined).hexdigest()}-3"'
    assert done["ETag"] == expected_etag, (done["ETag"], expected_etag)
    whole = b"".join(parts_data)
    got = s3.get_object(Bucket="multi", Key="big")
    assert got["ETag"] == expected_etag and got["ContentType"] == "video/x-test" and got["Metadata"] == {"a": "b"}
    assert got["Body"].read() == whole
    second = s3.get_object(Bucket="multi", Key="big", PartNumber=2)
    assert second["Body"].read() == parts_data[1] and second["PartsCount"] == 3
    ranged = s3.get_object(Bucket="multi", Key="big", Range=f"bytes={size - 10}-{size + 9}")
    assert ranged["Body"].read() == whole[size - 10:size + 10]
    expect_error("NoSuchUpload", 404, s3.list_parts, Bucket="multi", Key="big", UploadId=upload_id)
    # Abort.
    upload_id = s3.create_multipart_upload(Bucket="multi", Key="gone")["UploadId"]
    s3.upload_part(Bucket="multi", Key="gone", UploadId=upload_id, PartNumber=1, Body=b"x" * 1000)
    s3.abort_multipart_upload(Bucket="multi", Key="gone", UploadId=upload_id)
    expect_error("NoSuchUpload", 404, s3.abort_multipart_upload, Bucket="multi", Key="gone", UploadId=upload_id)
    expect_error(
        "NoSuchUpload", 404, s3.upload_part,
        Bucket="multi", Key="gone", UploadId=upload_id, PartNumber=1, Body=b"late",
    )
    assert not s3.list_multipart_uploads(Bucket="multi").get("Uploads")
    # Small parts are refused at completion, except the last.
    upload_id = s3.create_multipart_upload(Bucket="multi", Key="small")["UploadId"]
    e1 = s3.upload_part(Bucket="multi", Key="small", UploadId=upload_id, PartNumber=1, Body=b"a" * 100)["ETag"]
    e2 = s3.upload_part(Bucket="multi", Key="small", UploadId=upload_id, PartNumber=2, Body=b"b" * 100)["ETag"]
    expect_error(
        "EntityTooSmall", 400, s3.complete_multipart_upload,
        Bucket="multi", Key="small", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    single = s3.complete_multipart_upload(
        Bucket="multi", Key="small", UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}]},
    )
    assert s3.get_object(Bucket="multi", Key="small")["Body"].read() == b"b" * 100
    assert single["ETag"].endswith('-1"')
    # Parts with SDK checksums give a composite object checksum.
    upload_id = s3.create_multipart_upload(Bucket="multi", Key="summed", ChecksumAlgorithm="CRC32")["UploadId"]
    p1 = s3.upload_part(Bucket="multi", Key="summed", UploadId=upload_id, PartNumber=1, Body=parts_data[0], ChecksumAlgorithm="CRC32")
    p2 = s3.upload_part(Bucket="multi", Key="summed", UploadId=upload_id, PartNumber=2, Body=b"tail", ChecksumAlgorithm="CRC32")
    assert p1["ChecksumCRC32"] == crc32_b64(parts_data[0])
    done = s3.complete_multipart_upload(
        Bucket="multi", Key="summed", UploadId=upload_id,
        MultipartUpload={"Parts": [
            {"PartNumber": 1, "ETag": p1["ETag"], "ChecksumCRC32": p1["ChecksumCRC32"]},
            {"PartNumber": 2, "ETag": p2["ETag"], "ChecksumCRC32": p2["ChecksumCRC32"]},
        ]},
    )
    joined = base64.b64decode(p1["ChecksumCRC32"]) + base64.b64decode(p2["ChecksumCRC32"])
    assert done["ChecksumCRC32"] == f"{crc32_b64(joined)}-2", done
    got = s3.get_object(Bucket="multi", Key="summed", ChecksumMode="ENABLED")
    assert got["Body"].read() == parts_data[0] + b"tail"


def group_auth(s3):
    s3.create_bucket(Bucket="alices")
    s3.put_object(Bucket="alices", Key="secret", Body=b"for alice only")
    other = bob()
    # Bob sees none of Alice's buckets and may not touch them.
    assert other.list_buckets()["Buckets"] == []
    expect_error("AccessDenied", 403, other.get_object, Bucket="alices", Key="secret")
    expect_error("AccessDenied", 403, other.put_object, Bucket="alices", Key="x", Body=b"x")
    expect_error("AccessDenied", 403, other.list_objects_v2, Bucket="alices")
    expect_error("AccessDenied", 403, other.delete_bucket, Bucket="alices")
    expect_error("BucketAlreadyExists", 409, other.create_bucket, Bucket="alices")
    other.create_bucket(Bucket="bobs")
    expect_error("AccessDenied", 403, other.copy_object, Bucket="bobs", Key="stolen", CopySource="alices/secret")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["alices"]
    # A wrong secret, an unknown key.
    wrong = client(os.environ["DBYTES_ALICE_KEY"], "not-the-secret")
    expect_error("SignatureDoesNotMatch", 403, wrong.list_buckets)
    expect_error("SignatureDoesNotMatch", 403, wrong.get_object, Bucket="alices", Key="secret")
    unknown = client("DBUNKNOWNKEY00000000", "whatever")
    expect_error("InvalidAccessKeyId", 403, unknown.list_buckets)
    # Unsigned requests are refused.
    try:
        urllib.request.urlopen(f"{ENDPOINT}/alices/secret", timeout=10)
        raise AssertionError("anonymous GET succeeded")
    except urllib.error.HTTPError as err:
        assert err.code == 403, err.code
    # Presigned GET (SigV4) works without credentials; a tampered one does not.
    signer = client(config=CONFIG.merge(Config(signature_version="s3v4")))
    url = signer.generate_presigned_url("get_object", Params={"Bucket": "alices", "Key": "secret"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in url, url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"for alice only"
    try:
        urllib.request.urlopen(url.replace("secret?", "secret2?"), timeout=10)
        raise AssertionError("tampered presigned URL worked")
    except urllib.error.HTTPError as err:
        assert err.code == 403, err.code
        assert b"SignatureDoesNotMatch" in err.read()
    # An expired presigned URL is refused.
    expired = signer.generate_presigned_url("get_object", Params={"Bucket": "alices", "Key": "secret"}, ExpiresIn=1)
    time.sleep(2)
    try:
        urllib.request.urlopen(expired, timeout=10)
        raise AssertionError("expired presigned URL worked")
    except urllib.error.HTTPError as err:
        assert err.code == 403, err.code
    # boto3's default presigned URLs are still SigV2 (query auth): those work too.
    legacy = s3.generate_presigned_url("get_object", Params={"Bucket": "alices", "Key": "secret"}, ExpiresIn=300)
    with urllib.request.urlopen(legacy, timeout=10) as response:
        assert response.read() == b"for alice only"
    # Presigned PUT.
    put_url = signer.generate_presigned_url("put_object", Params={"Bucket": "alices", "Key": "uploaded"}, ExpiresIn=300)
    request = urllib.request.Request(put_url, data=b"via presigned put", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    assert s3.get_object(Bucket="alices", Key="uploaded")["Body"].read() == b"via presigned put"



def replace_body(s3, operation, body):
    """Registers a hook that sends `body` instead of the XML botocore built
    for `operation` (signed as sent), to test what the gateway makes of
    malformed input."""

    def hook(request, **_):
        request.data = body
        for name in list(request.headers.keys()):
            lower = name.lower()
            if lower in ("content-md5", "content-length", "x-amz-sdk-checksum-algorithm") or lower.startswith(
                "x-amz-checksum"
            ):
                del request.headers[name]
        request.headers["Content-Length"] = str(len(body))

    s3.meta.events.register_first(f"before-sign.s3.{operation}", hook)
    return hook


def group_badinput(s3):
    s3.create_bucket(Bucket="badinput")
    s3.put_object(Bucket="badinput", Key="k", Body=b"kept")
    # A key of 1025 bytes (S3's limit is 1024 bytes of UTF-8).
    expect_error("KeyTooLongError", 400, s3.put_object, Bucket="badinput", Key="k" * 1025, Body=b"x")
    s3.put_object(Bucket="badinput", Key="k" * 1024, Body=b"longest")
    assert s3.get_object(Bucket="badinput", Key="k" * 1024)["Body"].read() == b"longest"
    # Unsatisfiable and malformed ranges.
    expect_error("InvalidRange", 416, s3.get_object, Bucket="badinput", Key="k", Range="bytes=10-20")
    # S3 ignores a malformed Range; the header is signed, so it cannot be
    # dropped before s3s checks it, which refuses it as InvalidArgument.
    expect_error("InvalidArgument", 400, s3.get_object, Bucket="badinput", Key="k", Range="bytes=abc")
    # Unknown and malformed version ids.
    expect_error("NoSuchVersion", 404, s3.get_object, Bucket="badinput", Key="k", VersionId="0" * 32)
    code, status = error_code(s3.get_object, Bucket="badinput", Key="k", VersionId="not-a-version")
    assert status in (400, 404) and code in ("InvalidArgument", "NoSuchVersion"), (code, status)
    # Malformed XML bodies.
    bad = client()
    replace_body(bad, "DeleteObjects", b"<Delete><Object><Key>k</Key>")
    expect_error("MalformedXML", 400, bad.delete_objects, Bucket="badinput", Delete={"Objects": [{"Key": "k"}]})
    bad = client()
    replace_body(bad, "PutBucketVersioning", b"<VersioningConfiguration><Status>Sometimes")
    code, status = error_code(
        bad.put_bucket_versioning, Bucket="badinput", VersioningConfiguration={"Status": "Enabled"}
    )
    assert status == 400 and code in ("MalformedXML", "IllegalVersioningConfigurationException"), (code, status)
    # Nothing was lost on the way.
    assert s3.get_object(Bucket="badinput", Key="k")["Body"].read() == b"kept"
    assert s3.get_bucket_versioning(Bucket="badinput").get("Status") is None


GROUPS = {name[len("group_"):]: fn for name, fn in globals().items() if name.startswith("group_")}


def main(names):
    s3 = client()
    failed = []
    for name in names:
        try:
            GROUPS[name](s3)
            print(f"ok {name}")
        except Exception as err:  # noqa: BLE001 - report every group
            import traceback

            traceback.print_exc()
            detail = err.read().decode(errors="replace") if isinstance(err, urllib.error.HTTPError) else ""
            print(f"FAILED {name}: {err!r} {detail}")
            failed.append(name)
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(GROUPS)))

