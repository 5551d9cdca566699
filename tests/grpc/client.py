"""A real gRPC client (grpcio) for the gateway's tests: one call, its outcome as JSON.

    python3 client.py ADDRESS METHOD [--token T] [--timeout S] [--messages N] [--brief]

Prints {"code": "OK" | "UNAUTHENTICATED" | ..., "details": ..., "initial": {...},
"trailing": {...}, "responses": [...], "gaps": [...]} where `gaps` are the seconds between
streamed responses as they arrived.
"""
import argparse
import json
import time

import grpc

SERVICE = "timesheets.v1.Timesheets"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("address")
    p.add_argument("method")
    p.add_argument("--token")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--messages", type=int, default=3)
    p.add_argument("--brief", action="store_true", help="print only CODE: details")
    a = p.parse_args()
    metadata = [("authorization", f"Bearer {a.token}")] if a.token else []
    out = {"responses": [], "gaps": []}
    with grpc.insecure_channel(a.address) as channel:
        service = "timesheets.v1.Uploads" if a.method == "Upload" else SERVICE
        path = f"/{service}/{a.method}"
        try:
            if a.method == "List":
                call = channel.unary_stream(path)(b"", metadata=metadata, timeout=a.timeout)
                last = None
                for message in call:
                    now = time.monotonic()
                    if last is not None:
                        out["gaps"].append(now - last)
                    last = now
                    out["responses"].append(message.decode())
            elif a.method == "Upload":
                messages = (b"x" * 1000 for _ in range(a.messages))
                response, call = channel.stream_unary(path).with_call(
                    messages, metadata=metadata, timeout=a.timeout)
                out["responses"].append(response.decode())
            else:
                response, call = channel.unary_unary(path).with_call(
                    b"", metadata=metadata, timeout=a.timeout)
                out["responses"].append(response.decode())
            out["code"] = call.code().name
            out["details"] = call.details()
            out["initial"] = dict(call.initial_metadata() or ())
            out["trailing"] = dict(call.trailing_metadata() or ())
        except grpc.RpcError as e:
            out["code"] = e.code().name
            out["details"] = e.details()
            out["initial"] = dict(e.initial_metadata() or ())
            out["trailing"] = dict(e.trailing_metadata() or ())
    if a.brief:
        print(f"{out['code']}: {out['details']}")
    else:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
