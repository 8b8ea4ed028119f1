"""Tests of CPython's test_asyncio that are not run against tideloop.

ONLY tests that poke at stock asyncio's private internals belong here
(mocked selectors, ``_run_once``, ``_ready``, ``_scheduled``, ``_selector``,
``_make_self_pipe``, ``_process_events``, BaseEventLoop subclass internals):
such a test cannot say anything about tideloop.  A test that fails because
tideloop *behaves* differently is a failure and stays a failure - never add
it here.

Keys are fnmatch patterns matched against the test id without the
``test.test_asyncio.`` prefix, e.g.
``test_events.TideloopEventLoopTests.test_internal_fds``.  Values are a
one-line reason.
"""

_BE = "test_base_events.TideloopBaseEventLoopWithSelectorTests."
_EV = "test_events.TideloopEventLoopTests."
_SF = "test_sendfile.TideloopEventLoopTests."

_PATCH_SOCKET = ("@patch_socket: mocks the `socket` module global of "
                 "asyncio.base_events; tideloop uses the real socket module")

EXCLUSIONS = {
    # -- test_events (EventLoopTestsMixin on tideloop) -----------------------
    _EV + "test_timeout_rounding":
        "wraps loop._run_once and reads loop._selector (selector loop "
        "internals)",
    _EV + "test_prompt_cancellation":
        "calls the selector loop's private loop._stop_serving(sock)",
    _EV + "test_create_server_multiple_hosts_ipv4":
        "mocks asyncio.base_events.socket and loop._start_serving/"
        "_stop_serving",
    _EV + "test_create_server_multiple_hosts_ipv6":
        "mocks asyncio.base_events.socket and loop._start_serving/"
        "_stop_serving",

    # -- test_base_events (BaseEventLoopWithSelectorTests on tideloop) -------
    _BE + "test_accept_connection_retry":
        "calls BaseSelectorEventLoop._accept_connection()",
    _BE + "test_accept_connection_exception":
        "calls BaseSelectorEventLoop._accept_connection(), mocks "
        "_remove_reader/_start_serving",
    _BE + "test_create_connection_ssl_server_hostname_default":
        "mocks loop._make_ssl_transport (BaseEventLoop transport factory)",
    _BE + "test_create_connection_bluetooth": _PATCH_SOCKET,
    _BE + "test_create_connection_ip_addr": _PATCH_SOCKET,
    _BE + "test_create_connection_ipv6_scope":
        _PATCH_SOCKET + "; mocks loop._add_reader/_add_writer",
    _BE + "test_create_connection_multiple_errors": _PATCH_SOCKET,
    _BE + "test_create_connection_multiple_errors_local_addr": _PATCH_SOCKET,
    _BE + "test_create_connection_no_inet_pton": _PATCH_SOCKET,
    _BE + "test_create_connection_service_name":
        _PATCH_SOCKET + "; mocks loop._add_reader/_add_writer",
    _BE + "test_create_connection_timeout": _PATCH_SOCKET,
    _BE + "test_create_datagram_endpoint_cant_bind": _PATCH_SOCKET,
    _BE + "test_create_datagram_endpoint_ip_addr":
        _PATCH_SOCKET + "; mocks loop._add_reader",
    _BE + "test_create_datagram_endpoint_no_addrinfo": _PATCH_SOCKET,
    _BE + "test_create_datagram_endpoint_nosoreuseport": _PATCH_SOCKET,
    _BE + "test_create_datagram_endpoint_setblk_err": _PATCH_SOCKET,
    _BE + "test_create_datagram_endpoint_socket_err": _PATCH_SOCKET,
    _BE + "test_create_server_cant_bind": _PATCH_SOCKET,
    _BE + "test_create_server_nosoreuseport": _PATCH_SOCKET,
    _BE + "test_create_server_soreuseport_only_defined": _PATCH_SOCKET,

    # -- test_sendfile (SendfileMixin on tideloop) ---------------------------
    # They replace loop._sendfile_native with BaseEventLoop's to force the
    # fallback.  (Should tideloop borrow BaseEventLoop.sendfile, which calls
    # self._sendfile_native, these become meaningful again: re-enable.)
    _SF + "test_sendfile_force_fallback":
        "replaces loop._sendfile_native (BaseEventLoop private hook)",
    _SF + "test_sendfile_force_unsupported_native":
        "replaces loop._sendfile_native (BaseEventLoop private hook)",
    _SF + "test_sendfile_fallback_close_peer_in_the_middle_of_receiving":
        "replaces loop._sendfile_native (BaseEventLoop private hook)",

    # -- Python 3.14+ ---------------------------------------------------------
    "test_ssl.TestSSL."
    "test_remote_shutdown_receives_trailing_data_on_slow_socket":
        "mock.patch.object()s the socket transport's write() and swaps its "
        "private _sock for a wrapper once the private _read_ready_cb is None, "
        "to force _SelectorSocketTransport's delayed-write path (gh-115514); "
        "tideloop's C transport has neither attribute and writes to the fd",
    "test_sslproto.TideloopStartTLSTests."
    "test_create_connection_ssl_failed_certificate_no_cycles":
        "mock.patch.object()s asyncio.sslproto.SSLProtocol.connection_made "
        "to collect the socket transports; on 3.11+ tideloop's TLS is its C "
        "SSLProtocol, which never calls the patched Python method, so the "
        "list stays empty on every Python (3.14 included: it passed there "
        "only before the C protocol was merged; with TIDELOOP_SSL=python "
        "it passes on 3.14 and 3.15). tests/test_sslproto_edges.py::"
        "test_failed_certificate_leaves_no_cycles checks the same for the "
        "C protocol",
    "test_sslproto.SslProtoHandshakeTests.test_connection_lost_when_busy":
        "hands loop._make_socket_transport() a mock.Mock() socket (fileno "
        "12345, mocked send) to emulate BaseSelectorEventLoop's "
        "_make_ssl_transport(); tideloop's C transport needs a real socket",
    "test_subprocess.Subprocess*WatcherTests.test_watcher_implementation":
        "checks the type of the selector loop's private loop._watcher "
        "(tideloop watches children with its own pidfd reader)",
    "test_subprocess.SubprocessThreadedWatcherTests."
    "test_pid_not_reaped_before_exit_published":
        "mocks unix_events.can_use_pidfd and reads the private "
        "loop._watcher._threads of the selector loop",

    # -- test_unix_events (runs on the installed policy's loop) -------------
    "test_unix_events.SelectorEventLoopUnixSockSendfileTests.*":
        "every test calls _UnixSelectorEventLoop._sock_sendfile_native(_impl) "
        "directly and/or mocks loop._selector",
}
