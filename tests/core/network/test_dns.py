"""core/network/dns.py: aardvark-dns's configuration files and readiness (aardvark-dns itself
answers in tests/test_networks.py)."""

from __future__ import annotations

import os
import socket

from varpod.core.network import dns


def test_config_files_are_aardvarks_format():
    text = dns._config_text("10.90.0.1", [("b" * 64, "10.90.0.3", ("db", "bbbbbbbbbbbb")),
                                          ("a" * 64, "10.90.0.2", ("web", "aaaaaaaaaaaa", "www"))])
    assert text == ("10.90.0.1\n"
                    f"{'a' * 64} 10.90.0.2  web,aaaaaaaaaaaa,www\n"
                    f"{'b' * 64} 10.90.0.3  db,bbbbbbbbbbbb\n")


def test_a_bound_udp_port_is_seen():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert "127.0.0.1" in dns._udp_listening(port)
    assert "127.0.0.1" not in dns._udp_listening(port)


def test_a_pid_file_naming_another_program_is_not_aardvark(tmp_path):
    server = dns.DnsServer(monitor=None, config_dir=str(tmp_path), binary=dns.find_aardvark())
    assert server.pid() == 0
    (tmp_path / "aardvark.pid").write_text(str(os.getpid()))
    assert server.pid() == 0
    (tmp_path / "aardvark.pid").write_text("garbage")
    assert server.pid() == 0
