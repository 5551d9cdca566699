"""A raw HTTP/2 client (the `h2` library) for the gateway's HTTP/2 edge cases: it sends
what well-behaved clients never do. Prints one JSON line per request.

    python3 raw.py ADDRESS request HEADERS_JSON [BODY]   one request, headers as given
                                                       (pseudo-headers included, in order)
    python3 raw.py ADDRESS flood N                     N streams opened and reset at once
                                                       (the rapid-reset pattern), then one
                                                       ordinary request

Output: {"status": 200 | null, "headers": {...}, "reset": error code | null,
"goaway": error code | null}
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events
import h2.errors


def connect(address):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def outcome(sock, conn, stream_id):
    out = {"status": None, "headers": {}, "reset": None, "goaway": None}
    done = False
    while not done:
        try:
            data = sock.recv(65535)
        except socket.timeout:
            break
        if not data:
            break
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            break
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                for name, value in event.headers:
                    name, value = name.decode(), value.decode()
                    if name == ":status":
                        out["status"] = int(value)
                    else:
                        out["headers"][name] = value
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                done = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                out["reset"] = int(event.error_code)
                done = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                out["goaway"] = int(event.error_code)
                done = True
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
    return out


def request(address, headers, body=None):
    sock, conn = connect(address)
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, [(k, v) for k, v in headers], end_stream=body is None)
    if body is not None:
        conn.send_data(stream_id, body.encode(), end_stream=True)
    sock.sendall(conn.data_to_send())
    return outcome(sock, conn, stream_id)


def flood(address, n):
    sock, conn = connect(address)
    host = address
    base = [(":method", "GET"), (":scheme", "http"), (":authority", host), (":path", "/timesheets")]
    for _ in range(n):
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, base, end_stream=True)
        conn.reset_stream(stream_id, error_code=h2.errors.ErrorCodes.CANCEL)
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, base, end_stream=True)
    try:
        sock.sendall(conn.data_to_send())
    except OSError:
        return {"status": None, "headers": {}, "reset": None, "goaway": "closed"}
    return outcome(sock, conn, stream_id)


def main():
    address, mode = sys.argv[1], sys.argv[2]
    if mode == "request":
        headers = json.loads(sys.argv[3])
        body = sys.argv[4] if len(sys.argv) > 4 else None
        print(json.dumps(request(address, headers, body)))
    elif mode == "flood":
        print(json.dumps(flood(address, int(sys.argv[3]))))


if __name__ == "__main__":
    main()
