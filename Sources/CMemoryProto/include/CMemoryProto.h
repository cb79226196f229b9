// Umbrella header for the protobuf-c code generated from Protos/ by scripts/gen-protos.
// The generated files are committed; this header is not generated.
#pragma once
#include "google_protobuf_timestamp.pb-c.h"
#include "google_protobuf_struct.pb-c.h"
#include "google_protobuf_wrappers.pb-c.h"
#include "orchestra_rpc_v1_rpc.pb-c.h"
#include "orchestra_memory_v1_memory.pb-c.h"
#include "orchestra_memory_v1_service.pb-c.h"
