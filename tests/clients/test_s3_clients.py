"""boto3, the aws CLI and curl against a running onestack's S3 listener, with
only the endpoint URL and EC2 credentials from `openstack ec2 credentials
create`; what they store is what the swift CLI reads."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.clients.test_swift_cli import sha256, swift
from tests.conftest import CloudInfo

pytestmark = pytest.mark.clients

AWS = str(Path(sys.executable).with_name("aws"))
OPENSTACK = str(Path(sys.executable).with_name("openstack"))
MiB = 1 << 20


@pytest.fixture(scope="module")
def ec2(running_cloud: CloudInfo) -> dict[str, str]:
    r = subprocess.run([OPENSTACK, "--os-cloud", "onestack", "ec2", "credentials", "create",
                        "-f", "json"], env=running_cloud.env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    cred: dict[str, str] = json.loads(r.stdout)
    return cred


def client(info: CloudInfo, cred: dict[str, str], **kw: Any) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=info.s3_url, aws_access_key_id=cred["access"],
                        aws_secret_access_key=cred["secret"], **kw)


def aws_env(info: CloudInfo, cred: dict[str, str], tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": cred["access"], "AWS_SECRET_ACCESS_KEY": cred["secret"],
                "AWS_CONFIG_FILE": str(tmp / "none"), "AWS_SHARED_CREDENTIALS_FILE":
                    str(tmp / "none")})
    return env


def test_boto3_round_trip(running_cloud: CloudInfo, ec2: dict[str, str]) -> None:
    s3 = client(running_cloud, ec2)
    s3.create_bucket(Bucket="boto-basic")
    assert "boto-basic" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.put_object(Bucket="boto-basic", Key="dir/hello.txt", Body=b"hello",
                  Metadata={"color": "blue"}, ContentType="text/plain")
    got = s3.get_object(Bucket="boto-basic", Key="dir/hello.txt")
    assert got["Body"].read() == b"hello" and got["Metadata"] == {"color": "blue"}
    assert got["ContentType"] == "text/plain"
    part = s3.get_object(Bucket="boto-basic", Key="dir/hello.txt", Range="bytes=1-3")
    assert part["Body"].read() == b"ell" and part["ContentRange"] == "bytes 1-3/5"
    head = s3.head_object(Bucket="boto-basic", Key="dir/hello.txt")
    assert head["ContentLength"] == 5 and head["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"'
    s3.copy_object(Bucket="boto-basic", Key="copy.txt",
                   CopySource={"Bucket": "boto-basic", "Key": "dir/hello.txt"})
    listed = s3.list_objects_v2(Bucket="boto-basic", Delimiter="/")
    assert [o["Key"] for o in listed["Contents"]] == ["copy.txt"]
    assert listed["CommonPrefixes"] == [{"Prefix": "dir/"}]
    pages = s3.get_paginator("list_objects").paginate(Bucket="boto-basic", PaginationConfig={
        "PageSize": 1})
    assert [o["Key"] for p in pages for o in p["Contents"]] == ["copy.txt", "dir/hello.txt"]
    assert s3.get_bucket_location(Bucket="boto-basic")["LocationConstraint"] is None
    assert "Status" not in s3.get_bucket_versioning(Bucket="boto-basic")
    deleted = s3.delete_objects(Bucket="boto-basic", Delete={
        "Objects": [{"Key": "copy.txt"}, {"Key": "dir/hello.txt"}]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["copy.txt", "dir/hello.txt"]
    s3.delete_bucket(Bucket="boto-basic")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="boto-basic")
    assert exc.value.response["Error"]["Code"] == "404"


def test_boto3_multipart_upload_reads_back_through_swift_download(
        running_cloud: CloudInfo, ec2: dict[str, str], tmp_path: Path) -> None:
    from boto3.s3.transfer import TransferConfig

    s3 = client(running_cloud, ec2)
    s3.create_bucket(Bucket="boto-mpu")
    src = tmp_path / "big.bin"
    size = int(os.environ.get("ONESTACK_TEST_S3_MULTIPART_BYTES", str(40 * MiB + 12345)))
    with src.open("wb") as f:
        left = size
        while left:
            n = min(left, 4 * MiB)
            f.write(os.urandom(n))
            left -= n
    config = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB,
                            max_concurrency=4)
    s3.upload_file(str(src), "boto-mpu", "big.bin", Config=config)
    head = s3.head_object(Bucket="boto-mpu", Key="big.bin")
    parts = -(-size // (8 * MiB))
    assert head["ContentLength"] == size and head["ETag"].endswith(f'-{parts}"')
    out = tmp_path / "down.bin"
    swift(running_cloud, "download", "boto-mpu", "big.bin", "-o", str(out), cloud="onestack")
    assert sha256(out) == sha256(src)
    back = tmp_path / "back.bin"
    s3.download_file("boto-mpu", "big.bin", str(back), Config=config)
    assert sha256(back) == sha256(src)
    s3.delete_object(Bucket="boto-mpu", Key="big.bin")
    s3.delete_bucket(Bucket="boto-mpu")
    assert "boto-mpu+segments" not in swift(running_cloud, "list", cloud="onestack").stdout


def test_aws_cli(running_cloud: CloudInfo, ec2: dict[str, str], tmp_path: Path) -> None:
    env = aws_env(running_cloud, ec2, tmp_path)

    def aws(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([AWS, "--endpoint-url", running_cloud.s3_url, *args], env=env,
                           capture_output=True, text=True, timeout=300)
        if check:
            assert r.returncode == 0, f"aws {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r

    aws("s3", "mb", "s3://cli-bucket")
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(12 * MiB + 7))
    aws("s3", "cp", "--only-show-errors", str(src), "s3://cli-bucket/f.bin")
    assert "f.bin" in aws("s3", "ls", "s3://cli-bucket").stdout
    back = tmp_path / "back.bin"
    aws("s3", "cp", "--only-show-errors", "s3://cli-bucket/f.bin", str(back))
    assert sha256(back) == sha256(src)
    meta = json.loads(aws("s3api", "head-object", "--bucket", "cli-bucket", "--key",
                          "f.bin").stdout)
    assert meta["ContentLength"] == 12 * MiB + 7
    r = aws("s3api", "get-object", "--bucket", "cli-bucket", "--key", "nope",
            str(tmp_path / "x"), check=False)
    assert r.returncode != 0 and "NoSuchKey" in r.stderr
    aws("s3", "rm", "--only-show-errors", "s3://cli-bucket/f.bin")
    aws("s3", "rb", "s3://cli-bucket")
    assert "cli-bucket" not in aws("s3", "ls").stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_presigned_urls_with_curl(running_cloud: CloudInfo, ec2: dict[str, str]) -> None:
    from botocore.config import Config

    s3 = client(running_cloud, ec2)
    s3.create_bucket(Bucket="presigned")
    s3.put_object(Bucket="presigned", Key="o.txt", Body=b"signed content")

    def curl(url: str) -> tuple[int, bytes]:
        r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", url],
                           capture_output=True, timeout=60)
        body, _, code = r.stdout.rpartition(b"\n")
        return int(code), body

    v2 = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned", "Key": "o.txt"},
                                   ExpiresIn=300)
    v4 = client(running_cloud, ec2, config=Config(signature_version="s3v4")).generate_presigned_url(
        "get_object", Params={"Bucket": "presigned", "Key": "o.txt"}, ExpiresIn=300)
    assert "X-Amz-Signature=" in v4 and "Signature=" in v2
    assert curl(v2) == (200, b"signed content")
    assert curl(v4) == (200, b"signed content")
    short = client(running_cloud, ec2, config=Config(signature_version="s3v4")).generate_presigned_url(
        "get_object", Params={"Bucket": "presigned", "Key": "o.txt"}, ExpiresIn=1)
    time.sleep(2.1)
    code, body = curl(short)
    assert code == 403 and b"<Code>AccessDenied</Code><Message>Request has expired</Message>" \
        in body
    code, body = curl(v4.replace("X-Amz-Signature=", "X-Amz-Signature=1"))
    assert code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    put = s3.generate_presigned_url("put_object", Params={"Bucket": "presigned", "Key": "up"},
                                    ExpiresIn=300)
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                        "-H", "Content-Type:",
                        "--data-binary", "from curl", put], capture_output=True, timeout=60)
    assert r.stdout == b"200"
    assert s3.get_object(Bucket="presigned", Key="up")["Body"].read() == b"from curl"


def test_bad_credentials_store_nothing(running_cloud: CloudInfo, ec2: dict[str, str]) -> None:
    from botocore.exceptions import ClientError

    s3 = client(running_cloud, ec2)
    s3.create_bucket(Bucket="guarded")
    wrong = client(running_cloud, dict(ec2, secret="0" * 32))
    with pytest.raises(ClientError) as exc:
        wrong.put_object(Bucket="guarded", Key="x", Body=b"x")
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = client(running_cloud, {"access": "AKIDNOTHERE", "secret": "x"})
    with pytest.raises(ClientError) as exc:
        unknown.list_buckets()
    assert exc.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert s3.list_objects_v2(Bucket="guarded")["KeyCount"] == 0
