"""The engine client's parsing of HTTP answers and /containers/json: any bytes, any JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.containers import EngineError, PortBinding, _complete, _parse_response, parse_containers

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
container_like = st.fixed_dictionaries(
    {},
    optional={
        "Id": st.text(max_size=70) | st.integers(),
        "Names": st.lists(st.text(max_size=20) | st.none(), max_size=3) | st.text(),
        "Image": st.text(max_size=30) | st.none(),
        "State": st.text(max_size=10),
        "Ports": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "IP": st.text(max_size=10),
                    "PublicPort": st.integers(-5, 70000) | st.booleans(),
                    "PrivatePort": st.integers(-5, 70000) | st.text(),
                    "Type": st.sampled_from(["tcp", "udp", ""]) | st.integers(),
                },
            )
            | json_values,
            max_size=3,
        ),
        "Labels": st.dictionaries(st.sampled_from(["io.kubernetes.pod.name", "x"]), json_values, max_size=2),
        "NetworkSettings": json_values,
    },
)


@given(st.lists(container_like | json_values, max_size=6) | json_values)
def test_parse_containers_never_raises(payload: object) -> None:
    for c in parse_containers(payload, "docker"):
        assert c.id and isinstance(c.name, str) and isinstance(c.image, str)
        assert all(0 <= b.host_port <= 65535 and 0 <= b.container_port <= 65535 for b in c.ports)


@given(st.binary(max_size=300))
def test_parse_response_raises_only_engine_errors(data: bytes) -> None:
    try:
        _parse_response(data, "x")
    except EngineError:
        pass
    _complete([data or b"x"])


def test_kubernetes_labels_name_the_pod() -> None:
    [c] = parse_containers(
        [
            {
                "Id": "ab" * 32,
                "Names": ["/k8s_web_x"],
                "Labels": {
                    "io.kubernetes.pod.name": "web-7d9f",
                    "io.kubernetes.pod.namespace": "prod",
                    "io.kubernetes.container.name": "nginx",
                },
                "Ports": [{"IP": "0.0.0.0", "PublicPort": 80, "PrivatePort": 8080, "Type": "tcp"}],
                "NetworkSettings": {
                    "Networks": {"bridge": {"IPAddress": "172.17.0.2", "GlobalIPv6Address": ""}}
                },
            }
        ],
        "docker",
    )
    assert c.name == "prod/web-7d9f/nginx" and c.addresses == ("172.17.0.2",)
    assert c.ports == (PortBinding("0.0.0.0", 80, 8080, "tcp"),)


@pytest.mark.parametrize(
    ("raw", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]trailing", b"[]"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n1;ext=1\r\n]\r\n0\r\n\r\n", b"[]"),
        (b"HTTP/1.0 200 OK\r\n\r\n" + json.dumps([1]).encode(), b"[1]"),
    ],
)
def test_bodies(raw: bytes, body: bytes) -> None:
    assert _parse_response(raw, "x")[2] == body
