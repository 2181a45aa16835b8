"""Bearer token on every call (health included), TLS with a self-signed certificate, and the
refusal to listen on an open address without a token."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support_service import lite_extractor, running_server, self_signed_cert, stub_for

from regiond.api.v1 import regions_pb2 as pb
from regiond.api.v1 import regions_pb2_grpc as pb_grpc

TOKEN = "s3cret-token"


def test_token_required_on_every_call(tmp_path):
    with running_server(lite_extractor(), tmp_path, token=TOKEN) as srv:
        ch, stub = stub_for(srv)
        for metadata in (None, (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)):
            with pytest.raises(grpc.RpcError) as e:
                stub.GetInfo(pb.InfoRequest(), metadata=metadata)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # streams are refused too, before any frame is processed
        with pytest.raises(grpc.RpcError) as e:
            list(stub.StreamVideo(iter([pb.VideoFrame()])))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            health.Check(health_pb2.HealthCheckRequest())
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        good = (("authorization", f"Bearer {TOKEN}"),)
        assert stub.GetInfo(pb.InfoRequest(), metadata=good).profile == "lite"
        assert (
            health.Check(health_pb2.HealthCheckRequest(), metadata=good).status
            == health_pb2.HealthCheckResponse.SERVING
        )
        assert srv.metrics.errors.labels("GetInfo", "UNAUTHENTICATED")._value.get() == 3
        ch.close()


def test_non_loopback_needs_token_or_insecure():
    from regiond.service.config import ConfigError, ServeConfig

    with pytest.raises(ConfigError, match="non-loopback"):
        ServeConfig(listen="0.0.0.0:0").check()
    with pytest.raises(ConfigError, match="non-loopback"):
        ServeConfig(listen="[::]:0").check()
    ServeConfig(listen="0.0.0.0:0", token="t").check()
    ServeConfig(listen="0.0.0.0:0", insecure=True).check()
    ServeConfig(listen="[::1]:0").check()
    ServeConfig(listen="localhost:0").check()


def test_serve_cli_refuses_open_address_without_token(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "regiond", "serve", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1
    assert "non-loopback" in p.stderr and "--insecure" in p.stderr


def test_tls(tmp_path):
    key, cert = self_signed_cert(tmp_path)
    with running_server(lite_extractor(), tmp_path, tls_cert=cert, tls_key=key, token=TOKEN) as srv:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(srv.address, creds) as ch:
            info = pb_grpc.RegionServiceStub(ch).GetInfo(
                pb.InfoRequest(), metadata=(("authorization", f"Bearer {TOKEN}"),)
            )
            assert info.profile == "lite"
        # a plaintext client cannot talk to the TLS port
        ch, stub = stub_for(srv)
        with pytest.raises(grpc.RpcError) as e:
            stub.GetInfo(pb.InfoRequest(), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        ch.close()


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket

    from regiond.service.server import ConfigError, RegionServer, ServeConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            RegionServer(
                ServeConfig(listen=f"127.0.0.1:{port}", data_dir=tmp_path, index=False), extractor=lite_extractor()
            )
