// Umbrella header for the protobuf-c code generated from Protos/orchestra by scripts/gen-protos.
// The well-known types it uses (Struct, Timestamp, DoubleValue) are in CGoogleProtobuf.
// The generated files are committed; this header is not generated.
#pragma once
#include "CGoogleProtobuf.h"
#include "orchestra_rpc_v1_rpc.pb-c.h"
#include "orchestra_memory_v1_memory.pb-c.h"
#include "orchestra_memory_v1_service.pb-c.h"
