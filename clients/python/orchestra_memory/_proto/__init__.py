"""Generated protobuf modules (``scripts/gen-protos``; do not edit).

protoc writes imports such as ``from orchestra.rpc.v1 import rpc_pb2``; gen-protos rewrites them to
``from orchestra_memory._proto.orchestra.rpc.v1 import rpc_pb2`` so that this package never takes the
top-level name ``orchestra``. The well-known types (``google.protobuf.*``) come from the protobuf runtime.
"""
