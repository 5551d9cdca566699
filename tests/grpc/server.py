"""A real gRPC server (grpcio) for the gateway's tests: the Timesheets service, without
generated code (messages are raw bytes). Prints its port, then serves until killed.

    python3 server.py PORT

Methods of /timesheets.v1.Timesheets (and Upload of /timesheets.v1.Uploads):
  Get     unary: answers the request's metadata as JSON, so a test sees what reached it
  List    server streaming: three messages, 200 ms apart (arrive one by one, not at once)
  Upload  client streaming: answers how many messages and bytes it received
  Missing unary: fails with NOT_FOUND and its own message and trailing metadata
  Slow    unary: sleeps 3 s (a client deadline ends it first)
"""
import json
import sys
import time
from concurrent import futures

import grpc

SERVICE = "timesheets.v1.Timesheets"


def metadata_json(context):
    return json.dumps({k: v for k, v in context.invocation_metadata()}).encode()


def get(request, context):
    return metadata_json(context)


def list_(request, context):
    for i in range(3):
        yield json.dumps({"id": i, "at": time.monotonic()}).encode()
        time.sleep(0.2)


def upload(request_iterator, context):
    count, size = 0, 0
    for message in request_iterator:
        count += 1
        size += len(message)
    return json.dumps({"messages": count, "bytes": size}).encode()


def missing(request, context):
    context.set_trailing_metadata((("timesheet-id", "7"),))
    context.abort(grpc.StatusCode.NOT_FOUND, "no timesheet 7")


def slow(request, context):
    time.sleep(3)
    return b"late"


def main():
    port = int(sys.argv[1])
    identity = dict(request_deserializer=None, response_serializer=None)
    handlers = {
        "Get": grpc.unary_unary_rpc_method_handler(get, **identity),
        "List": grpc.unary_stream_rpc_method_handler(list_, **identity),
        "Missing": grpc.unary_unary_rpc_method_handler(missing, **identity),
        "Slow": grpc.unary_unary_rpc_method_handler(slow, **identity),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    uploads = {"Upload": grpc.stream_unary_rpc_method_handler(upload, **identity)}
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(SERVICE, handlers),
        grpc.method_handlers_generic_handler("timesheets.v1.Uploads", uploads),
    ))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
