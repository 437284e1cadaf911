"""The fast BatchWriteRecord sender against boto3, the reference: the same rows written both ways
land as the same records, and both give the same responses and errors."""

from __future__ import annotations

import dataclasses
import json
import ssl
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from fsmigrate import aws
from fsmigrate.aws import AwsSettings, describe_error, runtime_client, writer_client
from fsmigrate.encode import with_entries
from fsmigrate.errors import BadInput
from fsmigrate.fast_http import FastRuntimeClient
from fsmigrate.settings import load_settings
from fsmigrate.write import WriterSettings, write_partition
from jobtools import assumed_roles, create_group, unique

FEATURES = [("rid", "String"), ("ts", "String"), ("n", "Integral"), ("x", "Fractional"),
            ("s", "String"), ("tags", "String", "List")]
COLUMNS = ("rid", "ts", "n", "x", "s", "tags", "ttl")
# TTL counts from the event time: keep it recent so that records with a TTL are still there
EVENT_TIME = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
# values JSON escapes: quotes, backslashes, control characters, non-ASCII, astral plane
# (no line terminator: the service refuses those, limits.py)
ODD = ['quote " and \\ back', "tab\tback\bspace\x01 feed\f", "naïve ünïcödé ✓", "emoji 😀 𝄞",
       "", " "]


def rows(n: int) -> list[tuple]:
    out = []
    for i in range(n):
        tags = None if i % 5 == 0 else [ODD[i % len(ODD)], f"t{i}", ""]
        ttl = 3600 + i if i % 3 == 0 else None
        out.append((f"r{i:04d}", EVENT_TIME, str(i - 50), repr(i / 7 - 3),
                    ODD[i % len(ODD)] if i % 4 else None, tags, ttl))
    return out


def make_group(sm) -> str:
    name = unique("fast")
    create_group(sm, name, FEATURES, offline=False, storage="InMemory", record_id="rid",
                 event_time="ts")
    return name


def stored(fsr, group: str, ids: list[str]) -> dict[str, dict]:
    """What the target holds for each id, as BatchGetRecord returns it (with expiry)."""
    out = {}
    for start in range(0, len(ids), 100):
        resp = fsr.batch_get_record(Identifiers=[{
            "FeatureGroupName": group, "RecordIdentifiersValueAsString": ids[start:start + 100]}],
            ExpirationTimeResponse="Enabled")
        assert not resp["Errors"] and not resp["UnprocessedIdentifiers"]
        for rec in resp["Records"]:
            rec.pop("FeatureGroupName")
            out[rec["RecordIdentifierValueAsString"]] = rec
    return out


SCHEMA = ("rid string, ts string, n string, x string, s string, tags array<string>, "
          "ttl long")


def spark_encoded(spark, data: list[tuple], group: str) -> tuple[tuple[str, ...], list[tuple]]:
    """(columns, rows) as the write stage hands them over with entries built by Spark."""
    df = with_entries(spark.createDataFrame(data, SCHEMA), group, "rid", frozenset({"tags"}),
                      "ttl", None)
    return tuple(df.columns), [tuple(r) for r in df.collect()]


def write_both_ways(spark, emulator, sm, data: list[tuple]) -> dict[str, tuple]:
    """The rows written by boto3 (the reference), by the fast sender, and by the fast sender
    from entries Spark built: {way: (group, result)}."""
    out = {}
    for way in ("boto3", "fast", "spark"):
        group = make_group(sm)
        columns, rows_in = COLUMNS, data
        if way == "spark":
            columns, rows_in = spark_encoded(spark, data, group)
        settings = WriterSettings(
            aws=AwsSettings(endpoint_url=emulator.url, sender="boto3" if way == "boto3" else
                            "fast"), target_group=group,
            columns=columns, record_id_name="rid", collection_features=frozenset({"tags"}),
            ttl_column="ttl", batch_size=40, max_workers=2, write_api="batch",
            base_delay_s=0.001, max_attempts=1)
        out[way] = group, write_partition(iter(rows_in), settings)
    return out


def test_all_ways_write_the_same_records(spark, emulator, sm, fsr):
    data = rows(130)
    written = write_both_ways(spark, emulator, sm, data)
    got = {}
    for way, (group, result) in written.items():
        # 3 batches of 40 (25 + 15), then 10
        assert (result.written, result.failed, result.api_calls) == (len(data), [], 7), way
        got[way] = stored(fsr, group, [r[0] for r in data])

    boto = got["boto3"]
    assert len(boto) == len(data)
    for rid, rec in boto.items():
        assert got["fast"][rid] == rec, rid
        assert got["spark"][rid] == rec, rid
    assert sum("ExpiresAt" in rec for rec in boto.values()) == 44
    assert boto["r0001"]["Record"][-1] == {"FeatureName": "tags",
                                           "ValueAsStringList": [ODD[1], "t1", ""]}


def test_failed_records_read_the_same(spark, emulator, sm):
    data = rows(6)
    data[2] = (*data[2][:2], "not a number", *data[2][3:])  # n is Integral
    failures = {}
    for way, (_, result) in write_both_ways(spark, emulator, sm, data).items():
        assert result.written == 5 and len(result.failed) == 1, way
        failures[way] = result.failed[0]
    reference = failures["boto3"]
    assert reference["error_code"] == "ValidationError"
    assert failures["fast"] == reference
    # from Spark's entry: the same, less the features that were null (not sent)
    assert failures["spark"]["record"] == {
        k: v for k, v in reference["record"].items() if v is not None or k == "ttl"}
    assert {**failures["spark"], "record": None} == {**reference, "record": None}


def test_writer_client_follows_the_sender_setting(emulator):
    settings = AwsSettings(endpoint_url=emulator.url)
    assert isinstance(writer_client(settings), FastRuntimeClient)
    boto = writer_client(dataclasses.replace(settings, sender="boto3"))
    assert boto is runtime_client(dataclasses.replace(settings, sender="boto3"))
    assert not isinstance(boto, FastRuntimeClient)
    # everything but BatchWriteRecord is the boto3 client's
    assert writer_client(settings).meta.service_model.service_name == \
        "sagemaker-featurestore-runtime"


def both(emulator, call, before=lambda: None):
    """call(client) with the boto3 client and the fast one: (result or error) of each;
    `before` runs before each (re-seeds the emulator's faults)."""
    settings = AwsSettings(endpoint_url=emulator.url)
    out = []
    for client in (runtime_client(settings), FastRuntimeClient(
            runtime_client(settings), boto3.session.Session().get_credentials())):
        before()
        try:
            response = call(client)
            response.pop("ResponseMetadata", None)
            out.append(response)
        except ClientError as exc:
            meta = exc.response["ResponseMetadata"]
            out.append((type(exc).__name__, exc.response["Error"], meta["HTTPStatusCode"],
                        describe_error(exc)))
    return out


def entry(group: str, rid: str, **extra) -> dict:
    return {"FeatureGroupName": group, "Record": [
        {"FeatureName": "rid", "ValueAsString": rid},
        {"FeatureName": "ts", "ValueAsString": EVENT_TIME}, *extra.get("more", [])]}


def test_per_entry_errors_parse_the_same(emulator, sm):
    group = make_group(sm)
    entries = [entry(group, "ok"),
               entry(group, "bad-type", more=[{"FeatureName": "n", "ValueAsString": "x"}]),
               entry(group, "unknown", more=[{"FeatureName": "nope", "ValueAsString": "1"}]),
               entry("no-such-group", "lost")]
    boto, fast = both(emulator, lambda c: c.batch_write_record(Entries=entries))
    assert boto == fast
    assert len(fast["Errors"]) >= 2 and fast["UnprocessedEntries"] == []
    assert all(set(e) == {"Entry", "ErrorCode", "ErrorMessage"} for e in fast["Errors"])


@pytest.mark.parametrize("fault", [{"unprocessed_rate": 1.0}, {"error_rate": 1.0},
                                   {"throttle_tps": 0.001}, {"outage_seconds": 30}])
def test_faults_parse_the_same(emulator, sm, faults, fault):
    group = make_group(sm)
    entries = [entry(group, f"r{i}") for i in range(3)]
    # twice: the throttle's bucket lets a first call through
    boto, fast = both(emulator, lambda c: [c.batch_write_record(Entries=entries)
                                           for _ in range(2)][-1],
                      lambda: faults(**fault, seed=1))
    assert boto == fast
    if "unprocessed_rate" in fault:
        assert len(fast["UnprocessedEntries"]) == 3
    else:
        assert describe_error_kind(fast) == ("throttled" if "throttle_tps" in fault
                                             else "retryable"), fast


def describe_error_kind(outcome) -> str:
    return outcome[3][0]


def test_request_errors_parse_the_same(emulator, sm):
    group = make_group(sm)
    too_many = [entry(group, f"r{i}") for i in range(26)]
    boto, fast = both(emulator, lambda c: c.batch_write_record(Entries=too_many))
    assert boto == fast and fast[1]["Code"] == "ValidationError" and fast[2] == 400


def test_connection_errors_classify_the_same():
    dead = AwsSettings(endpoint_url="http://127.0.0.1:9")
    outcomes = []
    for sender in aws.SENDERS:
        client = writer_client(dataclasses.replace(dead, sender=sender))
        with pytest.raises(aws.AWS_ERRORS) as caught:
            client.batch_write_record(Entries=[entry("g", "r")])
        outcomes.append(describe_error(caught.value)[:2])
    assert outcomes == [("retryable", "ConnectionError")] * 2


def test_the_sender_is_a_conf_setting(tmp_path):
    conf = tmp_path / "conf.yaml"
    base = ["--conf", str(conf), "--source", "a", "--target", "b"]
    conf.write_text("aws:\n  region: us-east-1\n")
    assert load_settings(base).aws.sender == "fast"
    conf.write_text("aws:\n  sender: boto3\n")
    assert load_settings(base).aws.sender == "boto3"
    conf.write_text("aws:\n  sender: curl\n")
    with pytest.raises(BadInput, match="aws.sender"):
        load_settings(base)


def test_a_reset_connection_classifies_the_same_and_the_next_call_works(emulator, sm, faults):
    group = make_group(sm)
    settings = AwsSettings(endpoint_url=emulator.url)
    for client in (runtime_client(settings), FastRuntimeClient(
            runtime_client(settings), boto3.session.Session().get_credentials())):
        faults(reset_rate=1.0, seed=1)
        with pytest.raises(aws.AWS_ERRORS) as caught:
            client.batch_write_record(Entries=[entry(group, "r")])
        assert describe_error(caught.value)[:2] == ("retryable", "ConnectionError"), client
        faults()
        assert client.batch_write_record(Entries=[entry(group, "r")])["Errors"] == []


def test_the_signature_is_botocores_over_an_awsrequest(monkeypatch):
    """The fast sender signs a light request object with SigV4Auth; the Authorization it gets
    is the one SigV4Auth gives for the same request as an AWSRequest (boto3's form)."""
    import botocore.auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    fixed = datetime(2026, 1, 2, 3, 4, 5)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: fixed)
    body = b'{"Entries":[{"FeatureGroupName":"g","Record":[]}]}'
    cases = [(None, "https://runtime.example:443", "runtime.example"),
             ("session-token", "http://127.0.0.1:8080", "127.0.0.1:8080")]
    for token, url, host in cases:
        credentials = Credentials("AKIDEXAMPLE", "secret", token)
        fast = FastRuntimeClient(runtime_client(AwsSettings(region="eu-west-1",
                                                            endpoint_url=url)), credentials)
        signed = fast._sign(body)
        # the reference has no Host header: SigV4Auth derives it from the URL
        reference = AWSRequest(method="POST", url=fast._url, data=body, headers={
            k: v for k, v in fast._headers.items() if k != "Host"})
        SigV4Auth(credentials.get_frozen_credentials(), "sagemaker", "eu-west-1").add_auth(
            reference)
        assert signed.headers["Authorization"] == reference.headers["Authorization"]
        assert dict(signed.headers) == {"Host": host, **dict(reference.headers.items())}
        assert "SignedHeaders=content-type;host;x-amz-date" in signed.headers["Authorization"]
        assert ("X-Amz-Security-Token" in signed.headers) == (token is not None)


def test_refreshed_role_credentials_sign_the_next_call(clean_emulator, sm, moto_s3):
    from datetime import timedelta

    from dateutil.tz import tzlocal

    emulator = clean_emulator  # no callers yet
    group = make_group(sm)
    side = AwsSettings(endpoint_url=emulator.url, sts_endpoint_url=moto_s3).for_side(
        role_arn="arn:aws:iam::111111111111:role/fast-refresh")
    now = [datetime.now(tzlocal())]
    credentials = aws.role_credentials(side, time_fetcher=lambda: now[0])
    client = FastRuntimeClient(runtime_client(side), credentials)
    client.batch_write_record(Entries=[entry(group, "r")])
    now[0] += timedelta(minutes=56)  # inside botocore's refresh window: new keys
    client.batch_write_record(Entries=[entry(group, "r")])
    callers = {key: caller for key, caller in emulator.stats()["callers"].items()
               if "BatchWriteRecord" in caller["operations"]}
    assert len(callers) == 2  # one call with each key
    roles = assumed_roles()
    for key, caller in callers.items():
        assert caller == {"session_token": True, "operations": {"BatchWriteRecord": 1}}
        assert roles[key].role_arn == side.role_arn


# ---- HTTP/1.1 framing against a scripted server (real sockets) -------------------------------

class ScriptedServer:
    """Answers each request with the next scripted (raw response, close the connection after
    it); counts the connections it accepted."""

    def __init__(self, script: list[tuple[bytes, bool]], tls: ssl.SSLContext | None = None
                 ) -> None:
        import socket
        import threading

        self.tls = tls
        self.script = list(script)
        self.accepted = self.closed = 0
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while self.script:
            conn, _ = self.sock.accept()
            self.accepted += 1
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except OSError:  # the client refused the certificate
                    conn.close()
                    continue
            with conn:
                while self.script:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if not data:
                        break
                    head, _, body = data.partition(b"\r\n\r\n")
                    size = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(body) < size:
                        body += conn.recv(65536)
                    self.requests.append(body)
                    response, close = self.script.pop(0)
                    conn.sendall(response)
                    if close:
                        break
            self.closed += 1

    def wait_closed(self, n: int) -> None:
        """Until the server has closed n connections (the client's next call sees it)."""
        import time

        deadline = time.monotonic() + 5
        while self.closed < n and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.closed >= n


def response(status: str, body: bytes, *headers: str, chunks: int = 0) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json",
            "x-amzn-RequestId: rid-1", *headers]
    if chunks:
        step = -(-len(body) // chunks)
        parts = [body[i:i + step] for i in range(0, len(body), step)]
        payload = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in parts)
        payload += b"0\r\nX-Trailer: t\r\n\r\n"
        head.append("Transfer-Encoding: chunked")
    else:
        payload = body
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


OK = b'{"Errors":[],"UnprocessedEntries":[]}'


def test_responses_are_framed_as_http_1_1_says():
    unprocessed = json.dumps({"Errors": [], "UnprocessedEntries": [entry("g", "r2")]}).encode()
    refused = b'{"message":"1 validation error detected"}'
    server = ScriptedServer([
        (response("200 OK", OK, chunks=3), False),
        (b"HTTP/1.1 204 No Content\r\nx-amzn-RequestId: rid-2\r\n\r\n", False),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + response("200 OK", unprocessed), False),
        (response("200 OK", OK, "Connection: close"), True),  # said: a new connection after
        (response("200 OK", OK), True),  # not said: the client sees it closed when idle
        (response("400 Bad Request", refused, "x-amzn-ErrorType: ValidationError:http://x",
                  chunks=2), False),
        (response("200 OK", OK)[:-10], True),  # cut short
        (response("200 OK", OK), False),
    ])
    client = FastRuntimeClient(runtime_client(AwsSettings(endpoint_url=server.url)),
                               boto3.session.Session().get_credentials())
    sent = [entry("g", f"r{i}") for i in range(8)]
    first = client.batch_write_record(Entries=sent[:1])
    assert first["Errors"] == [] and first["ResponseMetadata"]["RequestId"] == "rid-1"
    assert client.batch_write_record(Entries=sent[1:2])["ResponseMetadata"]["RequestId"] == \
        "rid-2"  # no body, and none waited for
    assert client.batch_write_record(Entries=sent[2:3])["UnprocessedEntries"] == [sent[2]]
    assert server.accepted == 1
    client.batch_write_record(Entries=sent[3:4])
    client.batch_write_record(Entries=sent[4:5])
    server.wait_closed(2)
    with pytest.raises(ClientError) as refusal:
        client.batch_write_record(Entries=sent[5:6])
    assert describe_error(refusal.value) == ("permanent", "ValidationError",
                                             "1 validation error detected")
    assert type(refusal.value).__name__ == "ValidationError"
    with pytest.raises(aws.AWS_ERRORS) as cut:
        client.batch_write_record(Entries=sent[6:7])
    assert describe_error(cut.value)[:2] == ("retryable", "ConnectionError")
    assert client.batch_write_record(Entries=sent[7:])["Errors"] == []
    assert server.accepted == 4
    assert [json.loads(r)["Entries"] for r in server.requests] == [[e] for e in sent]


def self_signed(folder) -> tuple[str, str]:
    """(certificate, key) PEM files for 127.0.0.1, its own CA."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_https_trusts_what_boto3_trusts(tmp_path, monkeypatch):
    from botocore.config import Config

    cert, key = self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = ScriptedServer([(response("200 OK", OK), True)] * 2, tls)
    url = server.url.replace("http:", "https:")

    def outcomes() -> list:
        boto = boto3.session.Session().client(
            "sagemaker-featurestore-runtime", region_name="us-east-1", endpoint_url=url,
            config=Config(retries={"total_max_attempts": 1}))
        out = []
        for client in (boto, FastRuntimeClient(boto, boto3.session.Session().get_credentials())):
            try:
                out.append(client.batch_write_record(Entries=[entry("g", "r")])["Errors"])
            except aws.AWS_ERRORS as exc:
                out.append((type(exc).__name__, describe_error(exc)[:2]))
        return out

    # a certificate nobody vouches for: both refuse it, as a retryable connection error
    assert outcomes() == [("SSLError", ("retryable", "ConnectionError"))] * 2
    monkeypatch.setenv("AWS_CA_BUNDLE", cert)  # trusted as boto3 is told to trust it
    assert outcomes() == [[], []]
    assert len(server.requests) == 2


def test_behind_a_proxy_boto3_sends(emulator, monkeypatch):
    """boto3 knows proxies (HTTP_PROXY ...), the direct connections don't: through one, the
    fast client hands BatchWriteRecord, prepared entries too, to boto3."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: boto3 says so
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    boto = boto3.session.Session().client(  # a new one: proxies are read when it is built
        "sagemaker-featurestore-runtime", region_name="us-east-1", endpoint_url=emulator.url)
    fast = FastRuntimeClient(boto, boto3.session.Session().get_credentials())
    with pytest.raises(aws.AWS_ERRORS) as caught:
        fast.batch_write_record(Entries=[json.dumps(entry("g", "r"))])
    assert type(caught.value).__name__ == "ProxyConnectionError"
    assert describe_error(caught.value)[:2] == ("retryable", "ConnectionError")
